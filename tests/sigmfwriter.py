"""A SigMF collection written the way another program would, with the ``sigmf`` package only."""

import numpy as np
from sigmf import SigMFCollection, SigMFFile


def write_with_sigmf(directory, scenario, datatypes, *, geolocation_in="captures"):
    """A collection the way another program writes one with the sigmf package."""
    names = []
    for k, (station, iq) in enumerate(zip(scenario.stations, scenario.iq, strict=True)):
        datatype = datatypes[k % len(datatypes)]
        data = directory / f"rx{k}.sigmf-data"
        if datatype == "ci16_le":
            ints = np.stack([iq.real, iq.imag], 1) * 32768
            data.write_bytes(np.clip(np.round(ints), -32768, 32767).astype("<i2").tobytes())
        else:
            data.write_bytes(iq.astype("<c8").tobytes())
        point = {"type": "Point", "coordinates": [station.lon, station.lat, station.alt_m]}
        global_info = {"core:datatype": datatype, "core:sample_rate": scenario.sample_rate_hz}
        if geolocation_in == "global":
            global_info["core:geolocation"] = point
        handle = SigMFFile(global_info=global_info, data_file=data)
        capture = {
            "core:frequency": scenario.center_frequency_hz,
            "core:datetime": scenario.start_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if geolocation_in == "captures":
            capture["core:geolocation"] = point
        handle.add_capture(0, metadata=capture)
        handle.tofile(directory / f"rx{k}.sigmf-meta")
        names.append(f"rx{k}.sigmf-meta")
    collection = SigMFCollection(metafiles=names, base_path=directory)
    collection.tofile(directory / "emission.sigmf-collection")
    return directory / "emission.sigmf-collection"
