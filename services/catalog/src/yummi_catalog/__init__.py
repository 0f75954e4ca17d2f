"""Yummi's catalog service: dataset versions of the retailer catalog and the products they hold."""
