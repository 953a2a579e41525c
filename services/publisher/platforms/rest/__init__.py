"""What the Bluesky and Mastodon plugins share: JSON calls to a host a connection names
(public https only, checked on every connection through ``herald.platforms.public_session``),
the rate-limit headers' wait, and the media they download before uploading it."""
