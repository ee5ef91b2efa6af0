"""Page routers, one module per part of the product."""
