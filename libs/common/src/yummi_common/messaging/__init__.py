"""Events between contexts: outbox tables, the relay to JetStream, the consumer runtime with an inbox."""
