"""How the outside reaches the ai context: the gRPC servicer and the event consumers."""
