"""vigie: per-consumer behaviour of a WSO2 API Manager platform, from inside the gateway."""

__version__ = "0.1.0"
