"""The platform contract that Herald's publisher and every platform share: an attempt's
context, the publisher protocol, and the scrubbing of a token from free text. Plugins import
it as `herald.platforms`."""
