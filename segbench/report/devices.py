"""Which devices the cost figures come from. Latency, throughput and peak memory are the
device's as much as the model's: when the runs ran on more than one kind of device, the
report says so (a warning among the findings) and splits those figures by device (the
"cost by device" table), instead of averaging a GPU's latency with a CPU's."""

from __future__ import annotations

from collections import Counter

import pandas as pd

UNKNOWN_DEVICE = "unknown device"  # a record from before segbench recorded where it ran
TIMED_COSTS = ("latency_ms", "inference_images_per_s", "train_images_per_s", "peak_memory_mb")  # params and FLOPs are the model's


def device_of(record: dict) -> str:
    """The name of the device a run trained and was timed on (``ran_on.device_name``)."""
    name = (record.get("ran_on") or {}).get("device_name") if isinstance(record.get("ran_on"), dict) else None
    return name if isinstance(name, str) and name else UNKNOWN_DEVICE


def cost_devices(records: list) -> Counter:
    """Device name -> how many finished runs measured their cost on it."""
    return Counter(device_of(r) for r in records if r.get("status") == "ok" and r.get("cost"))


def mixed_devices(records: list) -> bool:
    return len(cost_devices(records)) > 1


def device_note(records: list) -> str | None:
    """The warning of a report whose cost figures come from several devices; None for one."""
    devices = cost_devices(records)
    if len(devices) < 2:
        return None
    listed = "; ".join(f"{name}: {count} run(s)" for name, count in sorted(devices.items(), key=lambda item: (-item[1], item[0])))
    return (f"DEVICES: cost figures come from {len(devices)} devices ({listed}); latency, throughput and memory compare only "
            "within one device: see the cost by device table.")


def cost_by_device(records: list, order: list) -> pd.DataFrame:
    """One row per variant and device: the finished runs' mean timed costs (``order``: the
    variant ids in the report's order). Empty unless the runs ran on several devices."""
    if not mixed_devices(records):
        return pd.DataFrame()
    rank = {variant_id: index for index, variant_id in enumerate(order)}
    rows = [{"variant_id": r["variant_id"], "variant": r["label"], "device": device_of(r),
             **{f"cost.{name}": _number(r["cost"].get(name)) for name in TIMED_COSTS}}
            for r in records if r.get("status") == "ok" and r.get("cost")]
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["variant_id", "variant", "device"], sort=False)
    table = grouped.mean(numeric_only=True).reset_index()
    table.insert(3, "runs", grouped.size().to_numpy())
    table["_rank"] = table["variant_id"].map(lambda v: rank.get(v, len(rank)))
    return table.sort_values(["_rank", "device"], kind="stable").drop(columns="_rank").reset_index(drop=True)


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
