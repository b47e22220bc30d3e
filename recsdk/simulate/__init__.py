"""A shop simulator for judging recommendation policies over users' lifetimes.

Users arrive, see lists, click and buy with position bias, tire of what they were shown
again and again, leave bored visits and come back (or not) depending on how the visit
went: so the list with the most clicks now is not the most valuable over time. See
docs/simulator.md for the response model and how to use it.
"""

from recsdk.simulate.model import ShopTruth
from recsdk.simulate.policies import (
    ClickEstimate,
    EpsilonGreedyPolicy,
    GreedyPolicy,
    MyopicPolicy,
    OraclePolicy,
    Policy,
    PopularityPolicy,
    RandomPolicy,
    epsilon_greedy_table,
)
from recsdk.simulate.runner import RunLog, run_policy
from recsdk.simulate.simulator import Observation, Outcome, ShopSimulator, SimulatorParams

__all__ = [
    "ClickEstimate", "EpsilonGreedyPolicy", "GreedyPolicy", "MyopicPolicy", "Observation",
    "OraclePolicy", "Outcome", "Policy", "PopularityPolicy", "RandomPolicy", "RunLog",
    "ShopSimulator", "ShopTruth", "SimulatorParams", "epsilon_greedy_table", "run_policy",
]
