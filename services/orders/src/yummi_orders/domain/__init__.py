"""Pure rules of the orders context: the order state machine, line validation and pricing, the basket."""
