"""Words on screen drawn by code (issue 17): no text asked of the models, supers, the brand end
card, safe zones. Checked at the fake Replicate (what the provider sees, how many requests) and in
the pixels of final.mp4 (OCR with tesseract)."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from adspec.library import load_library, render_template
from adspec.offline_planner import plan_spec_offline
from adspec.spec import Spec
from conftest import Project, small_spec
from fakes.replicate_server import FakeReplicate

REPLICATE_TOKEN = "r8_FAKE-token-not-real-000000"
TAGLINE = "Drink more every day"
#: words that ask a model to draw text
TEXT_WORDS = re.compile(r"\b(logo|logos|tagline|text|words|lettering|caption|headline|slogan)\b|\"", re.I)


@pytest.fixture
def live(project: Project):
    with FakeReplicate(latency=0.01) as replicate:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN,
                           REPLICATE_BASE_URL=replicate.base_url, REPLICATE_POLL_INTERVAL="0.01")
        yield project, replicate


def prompts_sent(replicate: FakeReplicate, kinds: tuple[str, ...] = ("flux", "hailuo", "veo", "kling", "wan")) -> list[str]:
    out = []
    for body in replicate.create_bodies:
        if any(k in body["slug"] for k in kinds):
            data = body["body"]["input"]
            out.append(" | ".join(str(data.get(f, "")) for f in ("prompt", "negative_prompt")))
    return out


# ---- 1. no text asked of the models ---------------------------------------------------------


def test_library_templates_ask_for_no_words() -> None:
    ctx = {"product": "Widget", "brand": "Acme", "tagline": "Made to last", "style": "calm", "look": "soft light",
           "camera": "slow dolly", "setting": "", "n": 1}
    for bt in load_library().beats.values():
        for field in ("image_prompt", "motion_prompt"):
            out = render_template(getattr(bt, field), ctx)
            assert not TEXT_WORDS.search(out), f"{bt.name}.{field} asks for words: {out}"
            assert "Made to last" not in out


def test_offline_plan_puts_no_tagline_in_prompts_or_lines() -> None:
    spec = Spec.model_validate({"prompt": "A 60-second ad for the Zip bottle", "duration": 60, "style": "calm",
                                "brand": {"name": "Zip", "tagline": TAGLINE}})
    plan = plan_spec_offline(spec)
    assert plan.beats[-1].type in ("cta", "end-card")
    for beat in plan.beats:
        for text in (beat.image_prompt, beat.motion_prompt, beat.voiceover or ""):
            assert TAGLINE not in text and not TEXT_WORDS.search(beat.image_prompt), (beat.id, text)


def test_prompts_sent_to_image_and_video_models_hold_no_tagline(live) -> None:
    project, replicate = live
    spec = small_spec(duration=8)
    spec["brand"]["tagline"] = TAGLINE
    del spec["beats"], spec["music"]  # planned (offline planner: no OpenAI key)
    project.write_spec("zip", spec)
    project.doit()
    sent = prompts_sent(replicate)
    assert len(sent) >= 3
    for prompt in sent:
        assert TAGLINE.lower() not in prompt.lower()
    images = [b["body"]["input"]["prompt"] for b in replicate.create_bodies if "flux" in b["slug"]]
    assert images and all("No text" in p for p in images)


# ---- 2. supers, the brand kit, the end card, safe zones ---------------------------------------

CTA, URL, SUPER = "Shop now", "zip.example.com", "Cold for 24 hours"


def text_spec(**brand) -> dict:
    spec = small_spec(duration=9)
    spec["brand"] = {"name": "Zip", "tagline": TAGLINE, "colors": ["#FF5A1F", "#111111"], "cta": CTA, "url": URL,
                     **brand}
    spec["beats"] = [
        {"id": "hook", "type": "hook", "duration": 3, "image_prompt": "A bottle on a rock",
         "motion_prompt": "slow push in", "on_screen": SUPER},
        {"id": "cta", "type": "cta", "duration": 3, "image_prompt": "The bottle in the sun", "motion_prompt": "pan left"},
        {"id": "end-card", "type": "end-card", "duration": 3, "image_prompt": "A plain backdrop",
         "motion_prompt": "holds still"},
    ]
    return spec


def frame_at(video, seconds: float, out):
    from PIL import Image

    from adspec import media

    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{seconds}", "-i", str(video), "-frames:v", "1",
                    str(out)], check=True)
    return Image.open(out).convert("RGB")


def ocr(png) -> str:
    """What tesseract reads, as a block of text (psm 6) and as sparse text (psm 11), from the frame
    enlarged twice (tesseract reads glyphs of 30 px or more reliably; a 360p frame's are smaller,
    and a one-level change in the encode could turn "Shop now" into "[shop now |")."""
    from PIL import Image

    big = Path(str(png)).with_suffix(".ocr.png")
    with Image.open(png) as im:
        im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS).save(big)
    return "\n".join(subprocess.run(["tesseract", str(big), "-", "--psm", psm], capture_output=True, text=True,
                                    check=True).stdout for psm in ("6", "11"))


def test_text_layer_draws_supers_and_end_card_inside_the_safe_zone_and_pays_nothing(live, tmp_path) -> None:
    project, replicate = live
    logo = project.specs / "logo.png"
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((5, 5, 115, 115), fill=(255, 255, 255, 255))
    im.save(logo)
    spec = text_spec(logo="logo.png")
    project.write_spec("zip", spec)
    project.doit()
    slugs = [b["slug"] for b in replicate.create_bodies]
    # the end card is composed locally: images and clips for hook and cta only, and music
    assert sorted(s.split("/")[0] for s in slugs) == ["black-forest-labs", "black-forest-labs", "meta",
                                                       "minimax", "minimax"], slugs
    for prompt in prompts_sent(replicate):
        for words in (TAGLINE, CTA, URL, SUPER):
            assert words.lower() not in prompt.lower(), (words, prompt)
    final = project.build / "zip" / "final.mp4"
    # OCR reads the tagline and the call to action on the end card
    card = tmp_path / "card.png"
    frame_at(final, 7.5, card)
    text = ocr(card)
    assert TAGLINE in text and CTA in text and URL in text, text
    sup = tmp_path / "super.png"
    frame_at(final, 1.5, sup)
    assert SUPER in ocr(sup)
    # every drawn text's box lies inside the safe zone of the aspect
    from adspec.safe_areas import safe_area

    layout = json.loads((project.build / "zip" / "text_layout.json").read_text())
    safe = safe_area("16:9").title_box(640, 360)
    roles = {t["role"] for t in layout["texts"]}
    assert {"super", "cta", "name", "tagline", "url", "logo"} <= roles
    for t in layout["texts"]:
        left, tp, r, b = t["box"]
        assert safe.left <= left < r <= safe.right and safe.top <= tp < b <= safe.bottom, t
    # the logo is drawn: white pixels of the circle at its box's centre
    logo_box = next(t["box"] for t in layout["texts"] if t["role"] == "logo")
    px = Image.open(card).getpixel(((logo_box[0] + logo_box[2]) // 2, (logo_box[1] + logo_box[3]) // 2))
    assert min(px) > 200, px

    # editing words on screen, the CTA, the tagline, the colours, the logo: zero requests, a new final
    before, old = len(replicate.create_bodies), final.read_bytes()
    spec["beats"][0]["on_screen"] = "Ice cold all day"
    spec["brand"].update(tagline="Drink better", cta="Buy today", url="zip.example.org", colors=["#0F4C81", "#F5A623"])
    project.write_spec("zip", spec)
    out = project.doit().stdout
    assert len(replicate.create_bodies) == before
    assert "mix:zip" in out and final.read_bytes() != old
    frame_at(final, 7.5, card)
    text = ocr(card)
    assert "Drink better" in text and "Buy today" in text


def test_nothing_drawn_keeps_the_copy_path(project: Project) -> None:
    from adspec import media

    spec = small_spec()
    spec["brand"] = {"colors": ["#FF5A1F", "#111111"]}  # no words for the text layer
    project.write_spec("zip", spec)
    project.doit()
    layout = json.loads((project.build / "zip" / "text_layout.json").read_text())
    assert layout["texts"] == []
    # the video stream is the stitched one, copied: same x264 settings, same packets
    final, video = project.build / "zip" / "final.mp4", project.build / "zip" / "video.mp4"
    assert media.x264_options(final) == media.x264_options(video)
    assert media.count_frames(final) == media.count_frames(video)


def test_an_over_long_super_is_a_one_line_error(project: Project) -> None:
    spec = text_spec()
    spec["beats"][0]["on_screen"] = "The coldest water bottle you will ever own, really"
    project.write_spec("zip", spec)
    proc = project.adspec("validate")
    assert proc.returncode != 0
    lines = [x for x in proc.stderr.splitlines() + proc.stdout.splitlines() if "on_screen" in x]
    assert len(lines) == 1, proc.stdout + proc.stderr
    assert re.search(r"zip\.yaml:\d+: beats\.0\.on_screen: beat 'hook': super 'The coldest .*' is \d+ characters; "
                     r"a hook beat holds at most 32", lines[0]), lines[0]


def test_a_super_too_wide_for_the_frame_names_the_beat_and_the_text() -> None:
    from adspec.text_fit import TextFitError, bundled_font, fit_problem, super_blocks

    # fits in a 16:9 frame, not in 2 lines of a 9:16 one at the readable minimum
    words = "Supercalifragilistic Hyperventilation"
    assert fit_problem(words, None, 1280, 720, "16:9") is None
    problem = fit_problem("W" * 30, None, 360, 640, "9:16")
    assert problem is not None and "readable minimum" in problem and "WWWW" in problem
    with pytest.raises(TextFitError, match="no glyph"):
        super_blocks([("super", "冷たい水")], bundled_font(), 1280, 720, "16:9")


def test_planners_write_supers_where_the_library_calls_for_them() -> None:
    spec = Spec.model_validate({"prompt": "A 30-second ad for the Zip bottle", "duration": 30, "style": "energetic",
                                "brand": {"name": "Zip"}})
    plan = plan_spec_offline(spec)
    lib = load_library()
    reveal = next(b for b in plan.beats if b.type == "product-reveal")
    assert reveal.on_screen == "Zip bottle"
    for beat in plan.beats:
        assert beat.on_screen is None or (beat.type in lib.on_screen.planned
                                          and len(beat.on_screen) <= lib.on_screen.limit(beat.type))


def test_placement_safe_zones_keep_every_drawn_text_clear_and_pay_nothing(live) -> None:
    """Reels keeps its bottom 35 % clear: adding it to a 9:16 ad made for TikTok moves the supers,
    the end card and the burned captions above it, re-rendered locally (no request)."""
    from adspec.checks import safe_zone_violations
    from adspec.placements import load_placements

    project, replicate = live
    spec = text_spec()
    spec.update(aspect_ratio="9:16", placements=["tiktok"])
    spec["beats"][0]["voiceover"] = "Meet the Zip bottle."
    project.write_spec("zip", spec)
    project.doit()
    ad = project.build / "zip"
    for_tiktok = json.loads((ad / "text_layout.json").read_text())
    reels = load_placements()["instagram-reels"]
    assert safe_zone_violations(for_tiktok, reels)  # drawn for TikTok's 20 %: inside Reels' bottom 35 %
    paid = len(replicate.create_bodies)

    spec["placements"] = ["tiktok", "instagram-reels"]
    project.write_spec("zip", spec)
    out = project.doit().stdout
    assert len(replicate.create_bodies) == paid and "mix:zip" in out  # drawn again, nothing asked
    layout = json.loads((ad / "text_layout.json").read_text())
    assert layout["safe_zones"] == ["instagram-reels"]  # TikTok's zone lies within the 9:16 area: it narrows nothing
    width, height = layout["width"], layout["height"]
    clear_below = height - round(height * 0.35)
    roles = [t["role"] for t in layout["texts"]]
    assert {"super", "cta", "name", "tagline", "url", "caption"} <= set(roles), roles
    for t in layout["texts"]:  # inside Reels' zone (sides 6 %, top 14 %, bottom 35 %) and TikTok's right 12 %
        left, top, right, bottom = t["box"]
        assert bottom <= clear_below and top >= round(height * 0.14), t
        assert left >= round(width * 0.06) and right <= width - round(width * 0.12), t
    captions = [t for t in layout["texts"] if t["role"] == "caption"]
    assert captions and all(t["box"][3] < clear_below for t in captions)  # above the highest bottom
    for t in captions:  # the size drawn and the lines as wrapped (the record said size 0 and the unwrapped text)
        assert t["size"] >= 12 and " ".join(" ".join(t["lines"]).split()) == " ".join(t["text"].split()), t
        assert t["box"][3] - t["box"][1] >= t["size"] * len(t["lines"]), t
    checks = json.loads((ad / "checks.json").read_text())
    assert checks["passed"] is True and checks["placements"] == ["tiktok", "instagram-reels"], checks["lines"]
    assert not safe_zone_violations(layout, reels)


def test_a_super_that_fits_the_aspect_but_not_a_placement_zone_names_the_beat_and_the_zone() -> None:
    from adspec.render.text_layer import layout
    from adspec.text_fit import TextFitError, fit_problem

    words = "Wonderfulness Unbelievable"
    narrow = {"kiosk": {"left": 0.4, "right": 0.4, "top": 0.1, "bottom": 0.1}}  # a zone as placements.yaml writes it
    assert fit_problem(words, None, 360, 640, "9:16") is None
    problem = fit_problem(words, None, 360, 640, "9:16", narrow)
    assert problem is not None and words in problem and "kiosk" in problem
    text = {"width": 360, "height": 640, "aspect_ratio": "9:16", "palette": [], "language": "en", "safe_zones": narrow,
            "brand": {}, "beats": [{"id": "hook", "type": "hook", "start": 0, "duration": 3, "on_screen": words}]}
    with pytest.raises(TextFitError) as e:
        layout(text)
    assert str(e.value).startswith("beat 'hook': ") and words in str(e.value) and "\n" not in str(e.value)
    assert e.value.field == "beats.hook.on_screen"


def test_a_caption_too_wide_for_its_band_is_wrapped_again_and_one_that_cannot_fit_is_an_error(tmp_path) -> None:
    from PIL import Image

    from adspec.captions import Cue
    from adspec.placements import text_zones
    from adspec.render.captions import caption_images
    from adspec.safe_areas import text_area
    from adspec.text_fit import TextFitError

    zones = text_zones(["instagram-reels"], "9:16")
    band = text_area("9:16", zones.values()).caption_box(360, 640)
    line = "Every bottle keeps your water cold all day"  # one caption line of 42 characters
    [placed] = caption_images([Cue("hook", 0, 1, line)], tmp_path, width=360, height=640, aspect_ratio="9:16",
                              palette=[], options={}, zones=zones)
    with Image.open(placed.png) as im:
        w, h = im.size
    assert band.left <= placed.x and placed.x + w <= band.right and band.top <= placed.y and placed.y + h <= band.bottom
    assert h > 2 * 21  # too wide for 281 px even at 12 px on one line: wrapped onto more lines, not cropped
    with pytest.raises(TextFitError) as e:
        caption_images([Cue("cta", 0, 1, "W" * 80)], tmp_path, width=360, height=640, aspect_ratio="9:16", palette=[],
                       options={}, zones=zones)
    assert str(e.value).startswith("beat 'cta': the caption 'WWW") and "instagram-reels" in str(e.value)


def test_a_long_caption_wraps_at_the_captions_size_before_it_shrinks(tmp_path) -> None:
    # one line too wide for the band was drawn smaller and smaller on one line (23 px on a 720x1280
    # ad, where two lines fit at the full size), and captions.size did nothing for it
    from adspec.captions import Cue
    from adspec.render.captions import TextStyle, caption_images, fit_block
    from adspec.safe_areas import text_area

    band = text_area("9:16").caption_box(720, 1280)
    style = TextStyle.for_brand([], 720, 1280, {})
    line = "Grab your Zip bottle today, friends."
    lines, size = fit_block([line], style, band.width, band.height)
    assert size == style.size and len(lines) == 2, (lines, size, style.size)
    bigger = TextStyle.for_brand([], 720, 1280, {"size": 1.5})
    assert fit_block([line], bigger, band.width, band.height)[1] > size  # the size setting acts on it
    short = caption_images([Cue("hook", 0, 1, "Thirsty?")], tmp_path / "a", width=720, height=1280,
                           aspect_ratio="9:16", palette=[], options={})
    long = caption_images([Cue("cta", 0, 1, line)], tmp_path / "b", width=720, height=1280, aspect_ratio="9:16",
                          palette=[], options={})
    from PIL import Image

    with Image.open(short[0].png) as a, Image.open(long[0].png) as b:
        assert b.height > a.height * 1.6  # two lines at the same size, not one line at half of it


# ---- 3. languages -----------------------------------------------------------------------------


def language_spec(languages: list[str]) -> dict:
    spec = text_spec()
    spec["brand"]["tagline"] = {"en": TAGLINE, "de": "Trink mehr, jeden Tag", "fr": "Buvez plus chaque jour"}
    spec["brand"]["cta"] = {"en": CTA, "de": "Jetzt kaufen", "fr": "Acheter"}
    spec["beats"][0]["voiceover"] = {"en": "Meet the Zip bottle.", "de": "Das ist die Zip Flasche.",
                                     "fr": "Voici la bouteille Zip."}
    spec["beats"][0]["on_screen"] = {"en": SUPER, "de": "24 Stunden kalt", "fr": "Froid pendant 24 heures"}
    spec["beats"][1]["voiceover"] = {"en": "Get yours today.", "de": "Hol dir deine.", "fr": "Achetez-la."}
    if len(languages) > 1:
        spec["variants"] = {"matrix": {"language": languages}}
    else:
        spec["language"] = languages[0]
    return spec


def test_a_language_variant_pays_only_for_its_voice(live, tmp_path) -> None:
    project, replicate = live
    spec = language_spec(["en", "de", "fr"])
    # a variant brings its own voice and caption style: the voice reaches the provider, the style does not
    spec["variants"]["include"] = [{"language": "fr", "voice.name": "Calm_Woman", "captions.size": 1.3}]
    project.write_spec("zip", spec)
    project.doit()
    by_model = Counter(b["slug"] for b in replicate.create_bodies)
    # one language's images, clips and music (the end card is local), and 2 voiced beats x 3 languages
    assert by_model == Counter({"black-forest-labs/flux-dev": 2, "minimax/hailuo-2.3-fast": 2, "meta/musicgen": 1,
                                "minimax/speech-02-turbo": 6}), by_model
    spoken = sorted(b["body"]["input"]["text"] for b in replicate.create_bodies if "speech" in b["slug"])
    assert "Das ist die Zip Flasche." in spoken and "Voici la bouteille Zip." in spoken
    voices = {b["body"]["input"]["text"]: b["body"]["input"]["voice_id"] for b in replicate.create_bodies
              if "speech" in b["slug"]}
    assert voices["Voici la bouteille Zip."] == "Calm_Woman" and voices["Das ist die Zip Flasche."] == "Friendly_Person"
    for prompt in prompts_sent(replicate):
        assert "Flasche" not in prompt and "Trink" not in prompt
    layout = json.loads((project.build / "zip@de" / "text_layout.json").read_text())
    assert layout["language"] == "de"
    texts = {t["text"] for t in layout["texts"]}
    assert {"24 Stunden kalt", "Trink mehr, jeden Tag", "Jetzt kaufen"} <= texts
    card = tmp_path / "de.png"
    frame_at(project.build / "zip@de" / "final.mp4", 7.5, card)
    assert "Trink mehr" in ocr(card)
    from adspec import media

    streams = subprocess.run([media.ffmpeg_exe(), "-hide_banner", "-i", str(project.build / "zip@de" / "final.mp4")],
                             capture_output=True, text=True, check=False).stderr
    assert re.search(r"Stream #0:2\S*\(deu\): Subtitle: mov_text", streams), streams


def test_a_missing_language_names_each_beat_in_one_line(project: Project) -> None:
    spec = language_spec(["en", "ja"])
    project.write_spec("zip", spec)
    proc = project.doit(check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    lines = [x for x in out.splitlines() if "no 'ja' text" in x]
    beats = [x for x in lines if "beat '" in x]
    fields = {re.search(r"\.yaml:\d+: (beats\.\d+\.\w+): beat '([\w-]+)'", x).groups() for x in beats}
    assert fields == {("beats.0.voiceover", "hook"), ("beats.0.on_screen", "hook"), ("beats.1.voiceover", "cta")}, out
    assert all("has: de, en, fr" in x for x in lines), lines
    # and the brand's words, each at its line with the beats' (they came later, one, without a line)
    text = (project.specs / "zip.yaml").read_text().splitlines()
    for field in ("tagline", "cta"):
        line = next(i for i, x in enumerate(text, 1) if x.strip().startswith(f"{field}:"))
        assert any(f"specs/zip.yaml:{line}: brand.{field}: no 'ja' text" in x for x in lines), (field, lines)


def test_the_offline_planner_writes_its_english_lines_as_english(project: Project) -> None:
    # `language: fr` planned offline: its English lines were taken as French, spoken by the French
    # voice and captioned under `fra`, and nothing said so
    spec = small_spec(duration=6, language="fr")
    del spec["beats"], spec["music"]
    project.write_spec("zip", spec)
    planned = project.adspec("plan", "zip")
    assert planned.returncode == 1
    beats = yaml.safe_load(project.beats_file("zip").read_text())["beats"]
    spoken = [b["voiceover"] for b in beats if b.get("voiceover")]
    assert spoken and all(set(v) == {"en"} for v in spoken), spoken  # what they are
    said = project.adspec("validate")
    lines = [x for x in said.stderr.splitlines() if "has no 'fr' voiceover (has: en); write it" in x]
    assert said.returncode == 1 and len(lines) == len(spoken), said.stderr
    run = project.doit(check=False)
    assert run.returncode != 0 and not (project.build / "zip" / "final.mp4").exists()
    # written by hand in French, it builds, and its lines are French
    for b in beats:
        if b.get("voiceover"):
            b["voiceover"]["fr"] = "Voici Zip."
    text = project.beats_file("zip").read_text()
    head = text[:text.index("beats:")]
    project.beats_file("zip").write_text(head + yaml.safe_dump({"beats": beats}, allow_unicode=True, sort_keys=False))
    project.doit()
    speech = json.loads((project.build / "zip" / "speech.json").read_text())
    assert all(line["text"] == "Voici Zip." for line in speech["lines"]), speech


def test_validate_names_each_text_a_language_variant_lacks_in_one_line(project: Project) -> None:
    """The offline planner cannot translate: `adspec validate` says, for each variant, which beat
    (or brand field) lacks its language, one line each, where the text is written."""
    project.write_spec("zip", language_spec(["en", "ja"]))
    proc = project.adspec("validate")
    assert proc.returncode == 1
    out = (proc.stdout + proc.stderr).splitlines()
    lines = [x for x in out if "no 'ja'" in x]
    assert len(lines) == len(out) == 5, out  # nothing else: the en variant has every text
    fields = {re.match(r"specs/zip\.yaml:\d+: ([\w.]+): zip@ja: ", x).group(1) for x in lines}
    assert fields == {"beats.0.voiceover", "beats.0.on_screen", "beats.1.voiceover", "brand.tagline", "brand.cta"}
    assert all("(has: de, en, fr); write it, or plan with an LLM planner, which translates" in x for x in lines)
    assert any("beat 'hook' has no 'ja' on_screen" in x for x in lines)
    at = [int(re.match(r"specs/zip\.yaml:(\d+): ", x).group(1)) for x in lines]
    assert at == sorted(at), lines  # by line, as the file reads (the brand's came after the beats')
    # an LLM planner translates the missing texts when the ad is planned: nothing to report
    assert project.adspec("validate", ADSPEC_BACKEND="", OPENAI_API_KEY="sk-FAKE-key-not-real-0000000").returncode == 0


def test_rtl_lays_out_right_to_left_and_cjk_wraps_between_characters() -> None:
    from adspec.text_fit import bundled_font, font_at, is_rtl, super_blocks, wrap

    blocks = super_blocks([("super", "שלום עולם")], bundled_font(), 1280, 720, "16:9")
    assert blocks[0].rtl and is_rtl("مرحبا بالعالم") and not is_rtl("Hello")
    font = font_at(bundled_font(), 40)
    text = "冷たい水をいつでもどこでも飲めます"
    lines = wrap(text, font, 300, 5)
    assert lines is not None and len(lines) > 1 and "".join(lines) == text  # no spaces invented
    # raqm lays the Hebrew out right to left: it draws what a plain left-to-right engine draws for
    # the letters reversed (and not what it draws for them in logical order)
    from PIL import Image, ImageDraw, ImageFont

    basic = ImageFont.truetype(str(bundled_font()), 40, layout_engine=ImageFont.Layout.BASIC)

    def picture(word: str, f) -> bytes:
        img = Image.new("L", (300, 80), 0)
        ImageDraw.Draw(img).text((10, 10), word, font=f, fill=255, direction="rtl" if f is font else None)
        return img.tobytes()

    assert picture("שלום", font) == picture("םולש", basic) != picture("שלום", basic)


def covering_font(out, chars: str):
    """The bundled DejaVu Sans Bold plus a glyph (a solid block, em-wide) for each of `chars`:
    a font that covers a Japanese text, made with fontTools (no large CJK font needed)."""
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTFont

    from adspec.text_fit import bundled_font

    font = TTFont(str(bundled_font()))
    upm, order = font["head"].unitsPerEm, list(font.getGlyphOrder())
    m = upm // 10
    for ch in dict.fromkeys(chars):
        name = f"uni{ord(ch):04X}"
        pen = TTGlyphPen(None)
        pen.moveTo((m, -m)), pen.lineTo((m, upm - 3 * m)), pen.lineTo((upm - m, upm - 3 * m)), pen.lineTo((upm - m, -m))
        pen.closePath()
        order.append(name)
        font.setGlyphOrder(order)
        font["glyf"][name] = pen.glyph()
        font["hmtx"][name] = (upm, m)
        for table in font["cmap"].tables:
            if table.isUnicode():
                table.cmap[ord(ch)] = name
    for tag in ("hdmx", "LTSH", "VDMX"):  # per-glyph tables the new glyphs are not in
        if tag in font:
            del font[tag]
    font["post"].formatType = 3.0
    font.save(str(out))
    return out


def test_a_super_kept_for_a_language_not_built_blocks_nothing(project: Project) -> None:
    # a Japanese text kept in `on_screen` for a later variant stopped the English ad's plan (the
    # bundled font has no Japanese), while such texts of `voiceover:` and `brand:` were left alone
    spec = text_spec()
    spec["beats"][0]["on_screen"] = {"en": SUPER, "ja": "冷たい水"}
    project.write_spec("zip", spec)
    shown = project.adspec("validate")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    project.doit("plan:zip")
    spec["language"] = "ja"  # built in Japanese, the same text is what is drawn: said
    spec["brand"] = {"name": "Zip", "colors": ["#FF5A1F", "#111111"]}
    project.write_spec("zip", spec)
    said = project.adspec("validate")
    assert said.returncode == 1 and "beat 'hook', language ja: the bundled font has no glyph" in said.stderr, said.stderr


def test_a_japanese_super_needs_a_font_that_covers_it_and_wraps_between_characters(project: Project, tmp_path) -> None:
    super_ja, line_ja = "冷たい水をいつでもどこでも", "つめたいみず。"
    spec = text_spec()
    spec.update(aspect_ratio="9:16", language="ja")
    spec["beats"][0].update(on_screen=super_ja, voiceover=line_ja)
    project.write_spec("zip", spec)
    # the bundled font has no Japanese: one line naming the beat, the text and the language (never boxes)
    proc = project.adspec("validate")
    assert proc.returncode == 1
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) == 1 and re.match(r"specs/zip\.yaml:\d+: beats\.0\.on_screen: beat 'hook', language ja: the "
                                        r"bundled font has no glyph for '.+' in '冷たい水をいつでもどこでも'; give brand\.font "
                                        r"a font that covers the script$", lines[0]), lines
    run = project.doit(check=False)
    assert run.returncode != 0 and not (project.build / "zip" / "final.mp4").exists()
    failed = [x for x in (run.stdout + run.stderr).splitlines() if "no glyph" in x]
    assert failed and all("beat 'hook', language ja" in x and super_ja in x and "brand.font" in x for x in failed)
    # the burned captions of a Japanese line too, before anything is made
    project.write_spec("zip", {**spec, "beats": [{**spec["beats"][0], "on_screen": "Cold"}, *spec["beats"][1:]]})
    shown = project.adspec("validate")  # validate says it first, at the line
    assert shown.returncode == 1 and re.match(
        r"specs/zip\.yaml:\d+: beats\.0\.voiceover: beat 'hook': the caption 'つめたいみず。': the bundled font has no "
        r"glyph for 'つめたいみず。'; give brand\.font \(or captions\.font\) a font that covers the script, or captions: "
        r"\{burn: false\}$", shown.stderr.strip()), shown.stderr
    run = project.doit("plan:zip", check=False)
    failed = [x for x in run.stdout.splitlines() if x.startswith("FAILED ")]
    assert len(failed) == 1 and re.search(r"zip\.yaml:\d+: beats\.0\.voiceover: beat 'hook', language ja: the font "
                                          r"DejaVuSans-Bold\.ttf has no ", failed[0]) and \
        f"in the caption '{line_ja}'; give brand.font (or captions.font)" in failed[0], failed

    # with a font that covers it: drawn, wrapped between characters (no spaces invented)
    covering_font(project.specs / "ja.ttf", super_ja + line_ja)
    spec["brand"]["font"] = "ja.ttf"
    project.write_spec("zip", spec)
    project.doit()
    layout = json.loads((project.build / "zip" / "text_layout.json").read_text())
    sup = next(t for t in layout["texts"] if t["role"] == "super")
    assert len(sup["lines"]) == 2 and "".join(sup["lines"]) == super_ja, sup
    captions = [t for t in layout["texts"] if t["role"] == "caption"]
    assert captions and captions[0]["text"] == line_ja
    # the first character is the font's glyph (a solid block), not a box outline: its middle is lit
    frame = frame_at(project.build / "zip" / "final.mp4", 1.5, tmp_path / "ja.png")
    left, top, right, bottom = sup["box"]
    pad, size = round(sup["size"] * 0.35), sup["size"]
    row = [(sum(frame.getpixel((x, top + pad + size // 2))) // 3) for x in range(left + pad, right - pad)]
    first = next(i for i, v in enumerate(row) if v > 180)  # the first glyph's left edge
    assert min(row[first + size // 4: first + size // 2]) > 180, row[first: first + size]


def translating_responder(body: dict) -> dict:
    """The fake LLM: plans with spoken lines; translates by marking each text 'DE '."""
    from fakes.openai_server import default_plan

    if body["response_format"]["json_schema"]["name"] == "Translation":
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        items = json.loads(re.search(r"<items>\s*(.*?)\s*</items>", user, re.S).group(1))
        return {"items": [{"key": i["key"], "text": f"DE {i['text']}"} for i in items]}
    plan = default_plan(body)
    for beat in plan["beats"]:
        beat["voiceover"] = "Meet the Zip bottle." if beat["type"] in ("hook", "cta") else None
        beat["on_screen"] = None
    return plan


def test_the_llm_planner_translates_missing_languages_once_per_beat_file_and_language(project: Project) -> None:
    from fakes.openai_server import FakeOpenAI

    spec = small_spec(duration=10)
    del spec["beats"], spec["music"]
    spec["brand"] = {"name": "Zip", "tagline": TAGLINE, "cta": CTA, "colors": ["#FF5A1F", "#111111"]}
    spec["variants"] = {"matrix": {"language": ["en", "de"]}}
    with FakeReplicate(latency=0.01) as replicate, FakeOpenAI(responder=translating_responder) as openai:
        project.env.update(ADSPEC_BACKEND="", REPLICATE_API_TOKEN=REPLICATE_TOKEN, REPLICATE_BASE_URL=replicate.base_url,
                           REPLICATE_POLL_INTERVAL="0.01", OPENAI_API_KEY="sk-FAKE-key-not-real-0000000",
                           OPENAI_BASE_URL=openai.base_url)
        project.write_spec("zip", spec)
        project.doit()
        assert openai.count == 2  # one plan shared by both languages, one translation into German
        spoken = [b["body"]["input"]["text"] for b in replicate.create_bodies if "speech" in b["slug"]]
        assert sorted(spoken) == ["DE Meet the Zip bottle.", "Meet the Zip bottle."]  # equal lines are one request
        layout = json.loads((project.build / "zip@de" / "text_layout.json").read_text())
        assert {f"DE {TAGLINE}", f"DE {CTA}"} <= {t["text"] for t in layout["texts"]}
        before = len(replicate.create_bodies)
        project.doit("clean")
        project.doit()
        assert openai.count == 2 and len(replicate.create_bodies) == before  # the translation is cached
