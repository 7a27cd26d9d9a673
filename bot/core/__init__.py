"""The transport-agnostic conversation core: messages, flows as data, and the engine."""
