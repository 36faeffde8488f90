"""``heimdall map``: results on a Leaflet map — live from the stream, or a static page.

Live (``heimdall map [--port P]``): a page on localhost that polls ``/results`` every second
and draws each new result — estimate, uncertainty ellipse, receivers, one curve of equal delay
difference per TDoA pair — with a side table (job, status, method, error code, latency).
Static (``heimdall map --out FILE.html [RESULTS.jsonl]``): the same page for a results file
(one ``heimdall.result/1`` per line, as ``--json`` prints them) or the stream's latest
results, with Leaflet inlined, so it opens from a file with no network.

Leaflet, Natural Earth's countries (``world-atlas``) and ``topojson-client`` come from their npm
packages, unpacked by ``scripts/bootstrap`` into ``Settings.map_assets_dir`` (git-ignored; no
CDN). Base tiles only if ``HEIMDALL_MAP_TILES_URL`` is set: without them the page draws land,
coastlines and borders from Natural Earth, offline; a scale bar and a legend always.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.config import Settings, get_settings
from heimdall.geo.distance import SPEED_OF_LIGHT_M_S
from heimdall.geo.enu import LocalFrame
from heimdall.harness.console import plural
from heimdall.schemas.result import Result

INITIAL_RESULTS = 200  # the live page starts with the stream's latest results
HYPERBOLA_POINTS = 121
ASSET_FILES = (  # under Settings.map_assets_dir, unpacked from npm packages by scripts/bootstrap
    "leaflet/leaflet.js", "leaflet/leaflet.css",
    "basemap/topojson-client.min.js", "basemap/countries-50m.json",
)  # fmt: skip
STATIC_DIRS = ("leaflet", "basemap")


def add_parser(sub) -> None:
    p = sub.add_parser("map", help="results on a map: live from the stream, or a static page")
    p.add_argument("results", nargs="?", default=None, metavar="RESULTS.jsonl",
                   help="with --out: results to draw (default: the stream's latest)")  # fmt: skip
    p.add_argument("--out", default=None, metavar="FILE.html", help="write a static page")
    p.add_argument("--port", type=int, default=None, help="default: HEIMDALL_MAP_PORT (8088)")
    p.add_argument("--address", default="127.0.0.1", help="interface to bind")
    p.add_argument("--last", type=int, default=INITIAL_RESULTS, help="results from the stream")
    p.set_defaults(func=cmd_map)


def cmd_map(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        assets = map_assets(settings.map_assets_dir)
    except FileNotFoundError as exc:
        print(f"heimdall map: {exc}", file=sys.stderr)
        return 2
    if args.out:
        if args.results:
            results = list(_read_results(Path(args.results)))
        else:
            from heimdall.client import ResultFeed

            results = [r for _, r in ResultFeed(settings).latest(args.last)]
        Path(args.out).write_text(static_page(results, assets, settings.map_tiles_url))
        print(f"wrote {args.out}: {plural(len(results), 'result')}", file=sys.stderr)
        return 0
    port = args.port or settings.map_port
    server = live_server(settings, args.address, port, args.last)
    print(f"heimdall map: http://{args.address}:{port}/ (Ctrl-C stops)", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# -- what is drawn ---------------------------------------------------------------------------


def result_view(result: Result) -> dict[str, Any]:
    """What the page needs of one result: table fields and geometry as ``[lat, lon]`` lists."""
    error = result.error
    view: dict[str, Any] = {
        "job_id": result.job_id,
        "status": result.status,
        "method": result.method or "",
        "code": error.code.value if error else "",
        "message": error.message[:200] if error else "",
        "latency_ms": round((result.timings_ms.queue or 0.0) + (result.timings_ms.total or 0.0), 1),
        "model": result.model_version or "",
    }
    features = (result.geojson or {}).get("features", [])
    receivers = [
        {"id": f["properties"]["receiver_id"], "lat": f["geometry"]["coordinates"][1],
         "lon": f["geometry"]["coordinates"][0], "used": f["properties"].get("used", True)}
        for f in features if (f.get("properties") or {}).get("kind") == "receiver"
    ]  # fmt: skip
    view["receivers"] = receivers
    if result.position is not None:
        view["estimate"] = [result.position.lat, result.position.lon]
    ellipse = [
        f for f in features if (f.get("properties") or {}).get("kind") == "uncertainty_ellipse"
    ]
    if ellipse:
        view["ellipse"] = [[lat, lon] for lon, lat in ellipse[0]["geometry"]["coordinates"][0]]
        view["semi_major_m"] = ellipse[0]["properties"].get("semi_major_m")
    view["hyperbolae"] = _hyperbolae(result, receivers)
    return view


def _hyperbolae(result: Result, receivers: list[dict]) -> list[list[list[float]]]:
    """Per TDoA pair, the branch of points whose distance difference to the two receivers is
    c × delay (straight lines in a plane tangent at the estimate: for display)."""
    if result.tdoa is None or result.position is None:
        return []
    where = {r["id"]: (r["lat"], r["lon"]) for r in receivers}
    frame = LocalFrame(result.position.lat, result.position.lon)
    span_m = 3 * max((np.hypot(*frame.to_enu(*p)[:2]) for p in where.values()), default=50_000.0)
    curves = []
    for pair in result.tdoa.pairs:
        if pair.a not in where or pair.b not in where:
            continue
        a = np.asarray(frame.to_enu(*where[pair.a])[:2])
        b = np.asarray(frame.to_enu(*where[pair.b])[:2])
        points = hyperbola_en(a, b, pair.delay_s * SPEED_OF_LIGHT_M_S, span_m)
        if len(points):
            lats, lons = frame.to_latlon(points[:, 0], points[:, 1])
            curves.append(
                [[round(float(y), 6), round(float(x), 6)] for y, x in zip(lats, lons, strict=True)]
            )
    return curves


def hyperbola_en(a: np.ndarray, b: np.ndarray, difference_m: float, span_m: float) -> np.ndarray:
    """Points ``[K, 2]`` (east, north) with |x − a| − |x − b| = ``difference_m``, within
    ``span_m`` of the foci's midpoint; empty when no such branch exists."""
    half_focal = float(np.hypot(*(b - a))) / 2
    half_axis = difference_m / 2
    if half_focal == 0 or abs(half_axis) >= half_focal:
        return np.zeros((0, 2))
    minor = np.sqrt(half_focal**2 - half_axis**2)
    t_max = np.arcsinh(span_m / max(minor, 1.0))
    t = np.linspace(-t_max, t_max, HYPERBOLA_POINTS)
    along, across = half_axis * np.cosh(t), minor * np.sinh(t)
    u = (b - a) / (2 * half_focal)
    v = np.array([-u[1], u[0]])
    return (a + b) / 2 + along[:, None] * u + across[:, None] * v


# -- the page --------------------------------------------------------------------------------


def map_assets(directory: Path) -> dict[str, str]:
    """Leaflet, topojson-client and Natural Earth's countries, as text (FileNotFoundError says
    how to get them)."""
    base = Path(directory)
    missing = [name for name in ASSET_FILES if not (base / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"the map's assets are not all in {base} ({', '.join(missing)} missing): run "
            "`source scripts/bootstrap` (it unpacks the leaflet, world-atlas and "
            "topojson-client npm packages there)"
        )
    return {name: (base / name).read_text() for name in ASSET_FILES}


def static_page(results: list[Result], assets: dict[str, str], tiles_url: str | None) -> str:
    """One self-contained HTML file: Leaflet, topojson-client and the countries inlined, the
    results as JSON."""
    scripts = [assets[name].replace("</script", "<\\/script")
               for name in ("leaflet/leaflet.js", "basemap/topojson-client.min.js")]  # fmt: skip
    head = f"<style>{assets['leaflet/leaflet.css']}</style>\n" + "\n".join(
        f"<script>{script}</script>" for script in scripts
    )
    views = [result_view(r) for r in results]
    basemap = json.loads(assets["basemap/countries-50m.json"])
    config = {"mode": "static", "results": views, "tiles": tiles_url, "basemap": basemap}
    return _page(head, config)


def _page(head: str, config: dict[str, Any]) -> str:
    data = json.dumps(config).replace("</", "<\\/")  # JSON inside a script element
    return PAGE.replace("<!--HEAD-->", head).replace("/*CONFIG*/null", data)


PAGE = (Path(__file__).parent / "map.html").read_text()  # the page: HTML, style, script


# -- serving ---------------------------------------------------------------------------------


def live_server(settings: Settings, address: str, port: int, last: int) -> ThreadingHTTPServer:
    from heimdall.client import ResultFeed

    feed = ResultFeed(settings)
    assets_dir = Path(settings.map_assets_dir)
    head = ('<link rel="stylesheet" href="/static/leaflet/leaflet.css">\n'
            '<script src="/static/leaflet/leaflet.js"></script>\n'
            '<script src="/static/basemap/topojson-client.min.js"></script>')  # fmt: skip
    config = {"mode": "live", "tiles": settings.map_tiles_url,
              "basemap_url": "/static/basemap/countries-50m.json"}  # fmt: skip
    page = _page(head, config).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/":
                self._send(200, page, "text/html; charset=utf-8")
            elif path.startswith("/static/") and path.count("/") == 3:
                _, _, folder, name = path.split("/")
                self._asset(folder, name)
            elif path == "/results":
                after = dict(p.partition("=")[::2] for p in query.split("&") if p).get("after", "")
                self._send(200, json.dumps(_new_results(feed, after, last)).encode(),
                           "application/json")  # fmt: skip
            else:
                self._send(404, b"not found\n", "text/plain")

        def _asset(self, folder: str, name: str) -> None:
            root = (assets_dir / folder).resolve()
            target = (root / name).resolve()
            if folder not in STATIC_DIRS or target.parent != root or not target.is_file():
                self._send(404, b"not found\n", "text/plain")
                return
            kind = {".js": "text/javascript", ".css": "text/css", ".png": "image/png",
                    ".json": "application/json"}  # fmt: skip
            self._send(
                200, target.read_bytes(), kind.get(target.suffix, "application/octet-stream")
            )

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server


def _new_results(feed, after: str, last: int) -> dict[str, Any]:
    """Results on the stream after entry ``after`` (first call: the latest ``last``)."""
    from urllib.parse import unquote

    after = unquote(after)
    if not after:
        tail = feed.latest(last)
        last_id = tail[-1][0] if tail else "0-0"
        return {"last_id": last_id, "results": [result_view(r) for _, r in tail]}
    entries = list(feed.read_stream(after, count=500))
    last_id = entries[-1][0] if entries else after
    return {"last_id": last_id, "results": [result_view(r) for _, r in entries]}


def _read_results(path: Path):
    with path.open() as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield Result.model_validate_json(line)
                except ValueError as exc:
                    raise SystemExit(f"{path}:{line_no}: not a heimdall.result/1: {exc}") from exc
