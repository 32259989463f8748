"""The review queue page (AppTest): order, filters, every verdict, bulk accept."""

from __future__ import annotations

from sqlalchemy import select

from catalog_ai.db import Category, Product, Review, unit_of_work
from conftest import frame


def _state(pid: int) -> tuple[str, str | None, str | None]:
    with unit_of_work() as s:
        p = s.get(Product, pid)
        return str(p.status), (p.category.path if p.category else None), p.label_source


def _reviews(pid: int) -> list[tuple[str, str, str | None]]:
    with unit_of_work() as s:
        return [(r.reviewer, str(r.action), r.category.path if r.category else None)
                for r in s.scalars(select(Review).where(Review.product_id == pid).order_by(Review.id))]


def _card_title(at) -> str:
    return at.subheader[0].value


def _messages(at) -> list[str]:
    return [m.value for m in [*at.success, *at.warning, *at.error]]


def test_queue_least_confident_first_with_up_next(catalog, open_app):
    at = open_app()
    assert _card_title(at) == "q-none"  # 0.30, abstained: nothing to accept
    assert at.button(key=f"accept-{catalog['q-none']}").disabled
    up_next = frame(at, "suggested", "source")
    assert list(up_next["title"]) == ["q-red", "q-odd", "q-banana", "q-green", "q-carrot"]
    assert any("6 waiting for review" in c.value for c in at.caption)


def test_filters_by_branch_model_and_source(catalog, open_app):
    at = open_app()
    at.selectbox(key="q-branch").set_value("Fruit > Apple").run()
    assert _card_title(at) == "q-red"
    assert list(frame(at, "suggested", "source")["title"]) == ["q-green"]
    at.selectbox(key="q-branch").set_value("(all)")
    at.selectbox(key="q-source").set_value("possibly a new category").run()
    assert _card_title(at) == "q-odd"
    assert any("Possibly a new category" in w.value for w in at.warning)
    at.selectbox(key="q-source").set_value("few-shot (prototype match)").run()
    assert _card_title(at) == "q-banana"
    # m2 made no suggestions: an empty queue for it.
    versions = at.selectbox(key="q-model").options
    at.selectbox(key="q-source").set_value("(all)")
    at.selectbox(key="q-model").set_value(versions[1]).run()  # newest first: m2
    assert any("Nothing waiting" in s.value for s in at.success)


def test_accept_and_skip(catalog, open_app):
    at = open_app()
    at.button(key=f"skip-{catalog['q-none']}").click().run()
    assert _card_title(at) == "q-red"
    at.button(key=f"accept-{catalog['q-red']}").click().run()
    assert _state(catalog["q-red"]) == ("accepted", "Fruit > Apple > Red", "review")
    assert _reviews(catalog["q-red"]) == [("alice", "accept", "Fruit > Apple > Red")]
    assert any("Accepted 'q-red'" in m for m in _messages(at))
    assert _card_title(at) == "q-odd"  # the next card, one skipped before it


def test_accept_partial_correct_new_category_reject(catalog, open_app):
    at = open_app(user="bob")
    pid = catalog["q-red"]
    at.button(key=f"skip-{catalog['q-none']}").click().run()
    at.selectbox(key=f"depth-{pid}").set_value(1)
    at.button(key=f"partial-{pid}").click().run()
    assert _state(pid) == ("accepted", "Fruit", "review")
    assert _reviews(pid) == [("bob", "accept_partial", "Fruit")]

    pid = catalog["q-none"]  # the skip counter moved past it: back to the first card
    at.selectbox(key="q-source").set_value("abstained").run()
    assert _card_title(at) == "q-none"
    at.selectbox(key=f"pick-{pid}").set_value("Veg > Carrot").run()  # picking reruns: the button unlocks
    at.button(key=f"correct-{pid}").click().run()
    assert _state(pid) == ("accepted", "Veg > Carrot", "review")
    assert _reviews(pid) == [("bob", "correct", "Veg > Carrot")]

    at.selectbox(key="q-source").set_value("possibly a new category").run()
    pid = catalog["q-odd"]
    assert at.text_input(key=f"new-{pid}").value == "Fruit > "  # prefilled with the suggested branch
    at.text_input(key=f"new-{pid}").input("Fruit > Kiwi > Gold")
    at.button(key=f"newcat-{pid}").click().run()
    assert _state(pid) == ("accepted", "Fruit > Kiwi > Gold", "review")
    assert _reviews(pid) == [("bob", "new_category", "Fruit > Kiwi > Gold")]
    with unit_of_work() as s:
        assert s.scalar(select(Category.id).where(Category.path == "Fruit > Kiwi")) is not None

    at.selectbox(key="q-source").set_value("few-shot (prototype match)").run()
    pid = catalog["q-banana"]
    at.button(key=f"reject-{pid}").click().run()
    assert _state(pid) == ("rejected", None, "review")
    assert _reviews(pid) == [("bob", "reject", None)]


def test_card_decided_by_someone_else_changes_nothing(catalog, open_app):
    """Every click reruns the script, which reads the queue first: a card another reviewer
    decided meanwhile is gone, so the click cannot act on it (the service's ReviewConflict
    covers the rest of the race)."""
    from catalog_ai.services.review import reject

    at = open_app()
    at.selectbox(key=f"pick-{catalog['q-none']}").set_value("Fruit > Banana").run()
    with unit_of_work() as s:  # bob decides while alice looks at the card
        reject(s, catalog["q-none"], reviewer="bob")
    at.button(key=f"correct-{catalog['q-none']}").click().run()
    assert not at.exception
    assert _reviews(catalog["q-none"]) == [("bob", "reject", None)]
    assert _card_title(at) == "q-red"


def test_bulk_accept_shows_count_and_expected_errors(catalog, open_app):
    at = open_app()
    at.slider(key="bulk-threshold").set_value(0.9).run()
    preview = next(m.value for m in at.markdown if "suggestions in this view reach" in m.value)
    assert preview.startswith("**2** suggestions in this view reach 0.90")
    assert "**0.1**" in preview  # (1 - 0.93) + (1 - 0.97) = 0.10
    button = at.button(key="bulk-accept")
    assert button.label == "Accept these 2 suggestions"
    button.click().run()
    for title in ("q-green", "q-carrot"):
        assert _state(catalog[title])[0] == "accepted"
        assert _reviews(catalog[title])[0][:2] == ("alice", "accept")
    assert _state(catalog["q-banana"])[0] == "suggested"
    assert any("Accepted 2 suggestions" in m for m in _messages(at))


def test_an_accept_sends_its_product_accepted_webhook_at_once(catalog, open_app):
    # The dashboard hands the verdict's delivery to its runner after the commit; no sweep runs
    # in a dashboard process, so without that hand-over nothing would arrive here.
    import time

    from webhook_receiver import Receiver

    from catalog_ai.services.webhook_signing import verify_signature
    from catalog_ai.services.webhooks import add_webhook

    receiver = Receiver()
    try:
        with unit_of_work() as s:
            secret = add_webhook(s, receiver.url, ["product.accepted"]).secret
        assert secret is not None
        at = open_app()
        at.button(key=f"skip-{catalog['q-none']}").click().run()
        at.button(key=f"accept-{catalog['q-red']}").click().run()
        deadline = time.monotonic() + 30
        while not receiver.accepted() and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.accepted()
        assert [r.event["type"] for r in got] == ["product.accepted"]
        data = got[0].event["data"]
        assert data["product_id"] == catalog["q-red"] and data["reviewer"] == "alice"
        assert data["category"]["path"] == "Fruit > Apple > Red"
        assert verify_signature(secret, got[0].headers, got[0].body)
    finally:
        receiver.close()
