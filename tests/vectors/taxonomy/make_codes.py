"""Write the shared test vector of the WSO2 error-code taxonomy (vigie.state.codes), for the
Java handler's and the log parsers' tests (run by hand after changing the taxonomy; the file is
committed, and tests/unit/state/test_codes.py fails when it is stale):

    .venv/bin/python tests/vectors/taxonomy/make_codes.py
"""

from __future__ import annotations

from pathlib import Path

from vigie.state import codes

if __name__ == "__main__":
    path = Path(__file__).with_name("codes.json")
    path.write_text(codes.vector_text())
    print(f"wrote {path}")
