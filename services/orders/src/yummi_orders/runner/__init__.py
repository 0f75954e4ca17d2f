"""The reference runner: claims queued orders through the gateway, places them at the retailer, acks them."""
