"""How the outside reaches the payments context: the gRPC servicer and the event consumers."""
