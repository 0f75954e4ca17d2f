"""Entry points of the orders service: the gRPC servicer, the event consumers and the lease sweeper."""
