-- A key that is not an admin's belongs to a tenant. One without a tenant would see no
-- tenant's rows through some routes and every tenant's rows through the lists (they filter
-- on the key's tenant, and NULL means "any"), so such keys are revoked here (their rows
-- are kept, revoked, for the record) and Postgres refuses any new one.
UPDATE api_keys SET revoked_at = now()
    WHERE NOT is_admin AND tenant_id IS NULL AND revoked_at IS NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_tenant_or_admin
    CHECK (is_admin OR tenant_id IS NOT NULL OR revoked_at IS NOT NULL);
