"""A synthetic day of FaaS traffic (issue 19), drawn from the distributions
Shahrad et al. published for Azure Functions' production workload:
"Serverless in the Wild: Characterizing and Optimizing the Serverless
Workload at a Large Cloud Provider", USENIX ATC'20 (arXiv:2003.03423).
Not fitted to their public trace (AzurePublicDataset): read off the paper.

1. Invocation rate per app (paper §3.3, Fig. 5(a), CDF of average
   invocations per day per app): "45% of the applications are invoked once
   per hour or less on average, and 81% of the applications are invoked once
   per minute or less on average"; the rates span 8 orders of magnitude. The
   rate is drawn from a piecewise log-uniform CDF through those anchors:
       F(1/day) = 0, F(1/hour) = 0.45, F(1/min) = 0.81, F(1/s) = 0.96,
       F(100/s) = 1.
   The 1/day floor and the 0.96 at 1/s are this script's choices (the
   figure's tail), as is the cap `max_rate` (default 5/s per app) that keeps
   a 2-core machine from being saturated by one app: apps above it are
   clipped, and the report says how many.
2. Burstiness (§3.3, Fig. 6, CDF of each app's inter-arrival-time
   coefficient of variation): a mass near CV = 0 (timer-triggered apps,
   periodic), a mass near CV = 1 (Poisson-like) and a long tail above 1
   (bursty). Drawn here as 20% periodic (with a random phase), 40% Poisson,
   40% bursty: bursts arrive as a Poisson process, each of a geometric
   number of requests (mean 2–10, uniform per app) 50 ms apart on average
   (exponential). Shares rounded from the figure, a judgement, not a fit.
3. Function: app i runs workload WORKLOADS[i % 3] (hello, home page, vote),
   so each configuration serves the same mix. The paper's execution times
   (Fig. 7: half the functions run < 1 s on average) and memory (Fig. 8) are
   NOT reproduced: the functions are the repo's, which run in milliseconds.

The trace is a list of (seconds from start, app index), fixed by the seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DAY = 86400.0
# (invocations per day, cumulative fraction of apps); see the docstring.
RATE_CDF = [(1.0, 0.0), (24.0, 0.45), (1440.0, 0.81), (86400.0, 0.96), (8.64e6, 1.0)]
SHAPES = [("periodic", 0.2), ("poisson", 0.4), ("bursty", 0.4)]
WORKLOADS = ["hello", "list", "vote"]


@dataclass
class App:
    index: int
    per_day: float  # drawn rate, before the cap
    rate: float  # requests per second, after the cap
    shape: str
    burst_mean: float
    workload: str


def draw_rate(rng: random.Random) -> float:
    """Invocations per day, by inverting the piecewise log-linear CDF."""
    u = rng.random()
    for (x0, f0), (x1, f1) in zip(RATE_CDF, RATE_CDF[1:]):
        if u <= f1:
            t = (u - f0) / (f1 - f0)
            return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))
    return RATE_CDF[-1][0]


def make_apps(n: int, seed: int, max_rate: float) -> list[App]:
    rng = random.Random(seed)
    apps = []
    for i in range(n):
        per_day = draw_rate(rng)
        u, shape = rng.random(), SHAPES[-1][0]
        acc = 0.0
        for name, share in SHAPES:
            acc += share
            if u < acc:
                shape = name
                break
        burst = rng.uniform(2, 10) if shape == "bursty" else 1.0
        apps.append(App(i, per_day, min(per_day / DAY, max_rate), shape, burst, WORKLOADS[i % len(WORKLOADS)]))
    return apps


def arrivals(app: App, seconds: float, rng: random.Random) -> list[float]:
    if app.shape == "periodic":
        period = 1.0 / app.rate
        t = rng.uniform(0, period)
        out = []
        while t < seconds:
            out.append(t)
            t += period
        return out
    out, t = [], 0.0
    burst_rate = app.rate / app.burst_mean  # bursts per second
    while True:
        t += rng.expovariate(burst_rate)
        if t >= seconds:
            return out
        # Geometric burst size with mean burst_mean (1 for Poisson apps).
        size = 1 if app.burst_mean <= 1 else 1 + int(math.log(1 - rng.random()) / math.log(1 - 1 / app.burst_mean))
        s = t
        for _ in range(size):
            if s < seconds:
                out.append(s)
            s += rng.expovariate(20.0)


def make_trace(apps: list[App], seconds: float, seed: int, max_events: int) -> list[tuple[float, int]]:
    rng = random.Random(seed + 1)
    events = sorted((t, a.index) for a in apps for t in arrivals(a, seconds, rng))
    return events[:max_events]


def describe(apps: list[App], events: list, seconds: float, max_rate: float) -> dict:
    rates = sorted(a.per_day for a in apps)
    n = len(apps)
    return {
        "n_apps": n, "seconds": seconds, "requests": len(events),
        "share_at_most_1_per_hour": sum(r <= 24 for r in rates) / n,
        "share_at_most_1_per_min": sum(r <= 1440 for r in rates) / n,
        "apps_clipped_to_max_rate": sum(a.per_day / DAY > max_rate for a in apps),
        "apps_with_no_request_in_window": n - len({i for _, i in events}),
        "shapes": {s: sum(a.shape == s for a in apps) for s, _ in SHAPES},
        "app_list": [vars(a) for a in apps] if n <= 200 else None,
    }
