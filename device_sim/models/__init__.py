"""Physics models of the simulated devices: a rooftop solar string, an EV charging pile and a
hydro-cooled bitcoin mining rig.

Each model turns *simulated* time into one reading's metrics, exactly the names, units and
integer ranges of :data:`protocol.envelope.METRICS`. Models do no I/O and never read a clock:
``step(start_ms=..., window_s=...)`` covers the window ``[start_ms, start_ms + window_s * 1000)``
(integer milliseconds UTC, any length from 1 s to a day) and advances the model's state, so
consecutive windows are continuous (an energy remainder, a charging session, a cloud or an
outage carries over). A window that starts later than the previous one ended is a gap: the
model lets its random processes evolve across it, ends an ongoing charging session (the pile
was not being simulated) and reports only the window itself. A window that starts before the
previous one ended is refused.

Randomness is deterministic per device: each window draws from its own ``random.Random``
seeded with ``(kind, seed, window number)``, never from the global generator. The whole state
of a model is therefore a handful of numbers (:meth:`state_json`), so a fleet of 10,000 devices
stays small and a restarted runner continues exactly where it stopped (:meth:`restore`).

Sub-Wh energy is carried between windows instead of being floored away, so 1-second readings
lose nothing to rounding: the reported energies always sum to within 1 Wh of the energy the
model simulated. That carry is why :mod:`protocol.plausibility` allows 1 Wh above the rated power
times the window (with its margin); the tests hold every model's output to that rule.

Location: Hong Kong (22.3 N, 114.17 E, UTC+8 all year, no daylight saving time).
"""

from device_sim.models.charger import ChargerRating, ChargingPile
from device_sim.models.common import DeviceModel
from device_sim.models.factory import build_model
from device_sim.models.miner import MinerRating, MiningRig, should_curtail
from device_sim.models.solar import SolarPanel, SolarRating, ambient_c, clear_sky_poa_wm2

__all__ = [
    "ChargerRating",
    "ChargingPile",
    "DeviceModel",
    "MinerRating",
    "MiningRig",
    "SolarPanel",
    "SolarRating",
    "ambient_c",
    "build_model",
    "clear_sky_poa_wm2",
    "should_curtail",
]
