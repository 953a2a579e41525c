"""The one wrapper over confluent-kafka; services never import confluent_kafka directly."""

from herald.shared.infra.kafka.admin import TopicSpec, create_topics, load_topic_specs
from herald.shared.infra.kafka.client import KafkaError, Message, Producer, consumer

__all__ = [
    "KafkaError",
    "Message",
    "Producer",
    "TopicSpec",
    "consumer",
    "create_topics",
    "load_topic_specs",
]
