"""How the catalog is reached: the gRPC servicer and the command line."""
