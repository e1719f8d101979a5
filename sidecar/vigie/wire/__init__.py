"""The wire: generated messages (``vigie.v1``) and batch <-> numpy column conversion."""
