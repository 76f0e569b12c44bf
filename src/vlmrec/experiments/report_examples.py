"""The report's "What each model recommends" section (experiments/examples.py builds it), as HTML
and as Markdown.

HTML: every thumbnail is one CSS class holding its image once (a tile is a `<span>` with that
class), so an item that appears in fifty strips costs its bytes once; the browser decodes a
thumbnail only when a tile that shows it is laid out (users after the first are collapsed). A
strip is a grid of K tiles beside its label at desktop width and two rows of tiles under it on a
phone-width window; nothing overflows the page.
"""

from __future__ import annotations

import html

from vlmrec.experiments.examples import Disagreement, ExamplesSection, ItemInfo, RowModel, Strip, UserExample

ANCHOR = "examples"
CSS = (
    ".ex-user{border:1px solid #ddd;border-radius:6px;padding:.3em .7em;margin:.6em 0}"
    ".ex-user>summary{padding:.3em 0}"
    ".strip{display:grid;grid-template-columns:190px minmax(0,1fr);gap:8px;align-items:start;"
    "padding:5px 0;border-top:1px solid #eee}"
    ".strip.twin{margin-left:22px;grid-template-columns:168px minmax(0,1fr);background:#f7f7f7;"
    "border-top:1px dashed #bbb}"
    ".strip .lab{font-size:13px;font-weight:600}.strip .lab small{display:block;font-weight:400;color:#666}"
    ".tiles{display:grid;grid-template-columns:repeat(10,minmax(0,1fr));gap:5px}"
    ".tile{font-size:11px;line-height:1.2;border:2px solid transparent;border-radius:4px;padding:2px;"
    "min-width:0}"
    ".tile.hit{border-color:#2e7d32;background:#e8f5e9}"
    ".th{display:block;width:100%;aspect-ratio:1;background:#eee center/contain no-repeat;border-radius:3px}"
    ".th.card{display:flex;align-items:center;justify-content:center;text-align:center;padding:3px;"
    "background:#e3e8f0;color:#333;font-size:10px;overflow:hidden}"
    ".tt{display:block;overflow:hidden;white-space:nowrap;text-overflow:ellipsis;margin-top:2px}"
    ".fl{display:inline-block;margin:1px 2px 0 0;padding:0 3px;border-radius:3px;font-size:10px;color:#fff}"
    ".fl.h{background:#2e7d32}.fl.c{background:#1565c0}.fl.t{background:#8e24aa}"
    ".dis{display:grid;grid-template-columns:1fr 1fr;gap:18px}"
    ".dis .tiles{grid-template-columns:repeat(auto-fill,minmax(84px,1fr))}"
    "@media (max-width:700px){.strip,.strip.twin{grid-template-columns:minmax(0,1fr)}"
    ".strip.twin{margin-left:10px}.tiles{grid-template-columns:repeat(5,minmax(0,1fr))}"
    ".dis{grid-template-columns:minmax(0,1fr)}}"
)


def examples_html(section: ExamplesSection | None) -> list[str]:
    """The section's HTML parts (none when the run kept no fitted model)."""
    if section is None:
        return []
    thumbs = "".join(
        f".i{i.item}{{background-image:url(data:{i.mime};base64,{i.thumb})}}"
        for i in section.items.values()
        if i.thumb
    )
    parts = [
        f"<style>{CSS}{thumbs}</style>",
        f"<h2 id='{ANCHOR}'>What each model recommends (top-{section.k})</h2>",
        f"<p class='note'>{html.escape(section.note)}</p>",
    ]
    if not section.users:
        parts.append("<p class='note'>(no test user to show)</p>")
    for n, ex in enumerate(section.users):
        parts.append(_user(ex, section, open_=n == 0))
    if section.disagreement is not None:
        parts += _disagreement(section.disagreement, section)
    return parts


def _tile(info: ItemInfo, hit: bool = False, extra: str = "") -> str:
    """One item: thumbnail (or title card), title, and its flags; the full title and the item
    id in the tooltip."""
    title = html.escape(info.title)
    if info.thumb:
        pic = f"<i class='th i{info.item}'></i><span class='tt'>{title}</span>"
    else:
        pic = f"<span class='th card'>{html.escape(info.title[:60])}</span>"
    flags = (
        ("<span class='fl h'>✓ hit</span>" if hit else "")
        + ("<span class='fl c'>cold</span>" if info.cold else "")
        + ("<span class='fl t'>tail</span>" if info.tail else "")
    )
    tip = html.escape(f"{info.title} ({info.item_id})")
    return f"<div class='tile{' hit' if hit else ''}' title='{tip}'>{pic}{flags}{extra}</div>"


def _row_label(row: RowModel) -> str:
    kind = {"id": "ID only", "content": "content", "twin": f"↳ its {row.control} twin"}[row.kind]
    return f"{html.escape(row.label)}<small>{kind} · seed {row.seed}</small>"


def _strip(strip: Strip, section: ExamplesSection) -> str:
    tiles = "".join(_tile(section.items[i], h) for i, h in zip(strip.items, strip.hits))
    n_hits = sum(strip.hits)
    twin = " twin" if strip.row.kind == "twin" else ""
    return (
        f"<div class='strip{twin}' data-row='{html.escape(strip.row.slug)}' data-hits='{n_hits}'>"
        f"<div class='lab'>{_row_label(strip.row)}<small>{_hits(n_hits)}</small></div>"
        f"<div class='tiles'>{tiles}</div></div>"
    )


def _user(ex: UserExample, section: ExamplesSection, open_: bool) -> str:
    history = "".join(_tile(section.items[i]) for i in ex.history)
    head = (
        f"<summary>User <b>{html.escape(ex.user_id)}</b> · {html.escape(ex.stratum)} · "
        f"{ex.n_history} items before test, {ex.n_test} test item{'s' if ex.n_test != 1 else ''}</summary>"
    )
    return (
        f"<details class='ex-user'{' open' if open_ else ''} data-user='{html.escape(ex.user_id)}'>{head}"
        f"<div class='strip hist'><div class='lab'>History<small>most recent first</small></div>"
        f"<div class='tiles'>{history}</div></div>"
        + "".join(_strip(s, section) for s in ex.strips)
        + "</details>"
    )


def _hits(n: int) -> str:
    """E.g. `1 hit`, `3 hits`."""
    return f"{n} hit{'s' if n != 1 else ''}"


def _rate(hits: int, slots: int) -> str:
    return f"{hits} of {slots} ({hits / slots:.0%})" if slots else "none"


def _disagreement(dis: Disagreement, section: ExamplesSection) -> list[str]:
    def side(title: str, items: tuple, hits: int, slots: int) -> str:
        """One side: its hit rate and its items."""
        tiles = "".join(
            _tile(section.items[d.item], extra=f"<small>in {d.times} lists, hit {d.hits}×</small>")
            for d in items
        )
        return (
            f"<div><h3>{html.escape(title)}</h3><p class='note'>Such slots that were hits: "
            f"{_rate(hits, slots)}.</p><div class='tiles'>{tiles or '(none)'}</div></div>"
        )

    c, r = dis.content.label, dis.reference.label
    return [
        f"<h3 id='disagree'>Where they disagree: {html.escape(c)} vs {html.escape(r)}</h3>",
        f"<p class='note'>Over {dis.users} test users: the items the best content row ({html.escape(c)}, "
        f"best on validation) ranks in its top-{section.k} and the best ID-only row ({html.escape(r)}) "
        "does not, and the reverse; each item with the number of users' lists it is in alone and how "
        "often it was a hit there.</p>",
        "<div class='dis'>"
        + side(f"Only {c}", dis.only_content, dis.content_hits, dis.content_slots)
        + side(f"Only {r}", dis.only_reference, dis.reference_hits, dis.reference_slots)
        + "</div>",
    ]


def examples_markdown(section: ExamplesSection | None) -> list[str]:
    """The section as Markdown: per user, the history and every row's top-K as titles."""
    if section is None:
        return []
    items = section.items

    def names(ids: tuple[int, ...], hits: tuple[bool, ...] | None = None) -> str:
        """Item titles with their marks, comma-separated."""
        marks = hits or (False,) * len(ids)
        return ", ".join(
            items[i].title.replace("|", "/")
            + ("" if not h else " ✓")
            + (" [cold]" if items[i].cold else "")
            + (" [tail]" if items[i].tail else "")
            for i, h in zip(ids, marks)
        )

    lines = [f"## What each model recommends (top-{section.k})", "", section.note, ""]
    for ex in section.users:
        lines += [f"### User {ex.user_id} ({ex.stratum})", "", f"- history: {names(ex.history)}"]
        lines += [
            f"{'  - ↳ ' if s.row.kind == 'twin' else '- '}**{s.row.label}** ({_hits(sum(s.hits))}): "
            + names(s.items, s.hits)
            for s in ex.strips
        ]
        lines.append("")
    dis = section.disagreement
    if dis is not None:
        lines += [
            f"### Where they disagree: {dis.content.label} vs {dis.reference.label} ({dis.users} users)",
            "",
            f"- only {dis.content.label}: hits {_rate(dis.content_hits, dis.content_slots)}; "
            + "; ".join(f"{items[d.item].title} ({d.times}×, {d.hits} hits)" for d in dis.only_content),
            f"- only {dis.reference.label}: hits {_rate(dis.reference_hits, dis.reference_slots)}; "
            + "; ".join(f"{items[d.item].title} ({d.times}×, {d.hits} hits)" for d in dis.only_reference),
            "",
        ]
    return lines
