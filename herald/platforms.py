"""What a platform plugin imports from Herald: the contract between the publisher and a
platform (one attempt's context, the protocol to implement, the outcomes to answer) and the
scrubber for a token in free text. Nothing else of Herald is part of the plugin API."""

from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.platforms.contract import AttemptContext, ClaimLost, PlatformPublisher
from herald.shared.platforms.scrub import Scrubber

__all__ = [
    "AttemptContext",
    "ClaimLost",
    "Connection",
    "Outcome",
    "PlatformPublisher",
    "PublishOutcome",
    "PublishRequest",
    "Scrubber",
]
