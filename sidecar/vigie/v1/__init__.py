"""Code generated from proto/vigie/v1 by `make proto`. Do not edit."""
