"""Events between contexts: the outbox tables, the relay to JetStream and the consumer runtime with an inbox."""
