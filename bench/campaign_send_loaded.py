"""``campaign_send`` with one core kept busy by a burner process for the whole
measurement, so ``make bench`` shows, as its own row, that the sending ratio holds
when the machine is not ours alone (see campaign_send.py; ``--burn N`` changes it).

    uv run python bench/campaign_send_loaded.py [--rounds 3] [--burn 1]
"""

from __future__ import annotations

import sys

from campaign_send import cli

if __name__ == "__main__":
    sys.exit(cli(default_burn=1))
