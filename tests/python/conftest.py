# Every rank of the job runs the same tests in the same order, so the collectives of each test
# line up. Rank 0 reports in full; the other ranks report failures only.
import os

import decent.torch as dt

dt.init(timeout=60)


def pytest_configure(config):
    if dt.rank() != 0:
        config.option.verbose = -2
        config.option.reportchars = "f"


def pytest_report_header(config):
    return f"decent.torch: {dt.size()} ranks, backend {dt.backend()}, pid {os.getpid()}"
