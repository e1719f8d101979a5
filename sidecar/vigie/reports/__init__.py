"""Autopsies (short-term, per minute) and reports (long-term, per day) built on any store."""
