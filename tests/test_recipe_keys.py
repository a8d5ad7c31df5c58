"""Every paid request adspec would send for a fixed set of specs, pinned by its key.

The request cache serves a request again only while its key (adspec.recipes: exactly what the
provider is sent) stays the same. A change of adspec that changes a key (a prompt's wording, a
default model or input field, a price-free option that slipped into a recipe, how a key is
hashed) makes every user pay again for what their cache already holds: after an upgrade, not
only in one run. The estimate (`adspec estimate --live --json`, which calls nothing) gives each
target's key; this test compares them with `tests/data/recipe_keys.json`.

A change meant to cost users a request again: run
`ADSPEC_PIN_KEYS=1 python -m pytest tests/test_recipe_keys.py`, and say in the commit and the
README which requests existing ads pay for once more.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from conftest import Project

PINNED = Path(__file__).parent / "data" / "recipe_keys.json"

# an 8x8 PNG written byte for byte (a reference image's key is its file's sha256: no encoder in between)
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mP4HyWPFTEMLQkA8uReAZpB1y0AAAAASUVORK5CYII=")

BRAND = {"name": "Zip", "tagline": "Drink more", "cta": "Shop now", "url": "zip.example.com",
         "colors": ["#FF5A1F", "#111111"]}


def _beat(id: str, type: str, duration: int, **more: object) -> dict:
    return {"id": id, "type": type, "duration": duration, "image_prompt": f"The Zip bottle, {id} shot, {{{{ city }}}}",
            "motion_prompt": f"slow {id} camera move", **more}


SPECS: dict[str, dict] = {
    # planned by the LLM planner: its request (the prompt, the library, the schema) is pinned; the
    # beats of the offline stand-in are not (a beat file, once written, is what is built)
    "planned": {"title": "Planned", "prompt": "A 15-second ad for the Zip water bottle in {{ city }}",
                "vars": {"city": "Denver"}, "brand": BRAND},
    # every model family, the defaults included, with words on screen and voice lines
    "zip": {"title": "Zip", "prompt": "An ad for the Zip bottle in {{ city }}", "duration": 28, "style": "energetic",
            "vars": {"city": "Denver"}, "brand": BRAND, "seed": 7, "music": {"prompt": "upbeat electronic", "bpm": 120},
            "assets": {"product": "product.png"},
            "beats": [
                _beat("hook", "hook", 3, models={"video": "kling-v2.1", "image": "flux-1.1-pro"},
                      voiceover={"en": "Thirsty in {{ city }}?", "fr": "Soif à {{ city }} ?"}, on_screen="Cold for 24 hours"),
                _beat("reveal", "product-reveal", 6, models={"video": "veo-3.1-fast"}, shows=["product"]),
                _beat("demo", "demo", 10, models={"video": "wan-2.2-i2v-fast"},  # two chunks: the second from the first's last frame
                      voiceover={"en": "It keeps ice for a day.", "fr": "La glace tient une journée."}),
                _beat("feature", "feature", 5, models={"video": "seedance-1-lite", "image": "flux-schnell"}),
                _beat("cta", "cta", 4, voiceover={"en": "Get yours today.", "fr": "Prenez la vôtre."}),
            ],
            "variants": {"named": {
                "vertical": {"aspect_ratio": "9:16", "resolution": "1080p", "models.video": "hailuo-2.3"},
                "fr": {"language": "fr", "voice.name": "Calm_Woman"},
                "de": {"language": "de", "models.planner": "gpt-4.1"},  # the LLM planner translates: its request
                "hd": {"models.voice": "gpt-4o-mini-tts", "voice.name": "nova", "native_audio": True},
            }}},
}


def _keys(project: Project) -> dict[str, str]:
    out = project.adspec("estimate", "--live", "--json")
    assert out.returncode in (0, 1), out.stderr
    run = json.loads(out.stdout)
    keys: dict[str, str] = {}
    for ad in run["ads"]:
        assert ad["error"] is None, (ad["ad"], ad["error"])
        for item in ad["targets"]:
            if item["key"] and item["action"] in ("pay", "cache") and (ad["ad"] != "planned" or item["phase"] == "plan"):
                keys[item["target"]] = item["key"]
    return dict(sorted(keys.items()))


def test_the_requests_of_a_fixed_set_of_specs_keep_their_keys(project: Project) -> None:
    for name, spec in SPECS.items():
        project.write_spec(name, spec)
    (project.specs / "product.png").write_bytes(_PNG)
    keys = _keys(project)
    for there in ("plan:planned", "plan:zip@de", "voice:zip@fr/hook", "voice:zip@hd/hook", "chunk:zip@vertical/demo/1",
                  "storyboard:zip@vertical/reveal", "music:zip@hd"):
        assert there in keys, (there, sorted(keys))  # every kind of request is in the set
    if os.environ.get("ADSPEC_PIN_KEYS") == "1":
        PINNED.write_text(json.dumps(keys, indent=1) + "\n", encoding="utf-8")
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    changed = sorted(t for t in pinned.keys() & keys.keys() if pinned[t] != keys[t])
    assert not changed and keys.keys() == pinned.keys(), (
        f"these requests changed key: every existing ad pays for them again: {changed}; "
        f"new: {sorted(keys.keys() - pinned.keys())}; gone: {sorted(pinned.keys() - keys.keys())}. "
        "If meant, see this file's docstring.")
