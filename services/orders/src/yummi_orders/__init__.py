"""Yummi's orders context: baskets, orders, the order saga and the runner queue, served over gRPC."""
