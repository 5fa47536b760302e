"""``python -m tunery.server.migrations revision "message"``: autogenerate a revision from the models."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from tunery.server.db.session import create_db_engine
from tunery.server.migrations import alembic_config, upgrade_head


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "revision":
        sys.stderr.write('usage: python -m tunery.server.migrations revision "message"\n')
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_db_engine(f"sqlite:///{Path(scratch) / 'scratch.db'}")
        upgrade_head(engine)
        with engine.connect() as connection:
            command.revision(alembic_config(connection), message=argv[1], autogenerate=True)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
