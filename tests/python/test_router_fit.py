"""`switchyard router fit|eval` (issue 36): a router fitted on the user's own tiers, with the
cluster's real embedder (MiniLM through the controller's Embed RPC). Four made-up tiers route
their held-out prompts far above chance; a file with one tier, a malformed line and a tier
the router does not know are clear errors naming the line; an edited router file is refused.
`router install` hot-swaps the router into a running cluster whose [routes.tiers] serve those
tiers, under load, without losing a request; a router with an unrouted tier is refused and
the installed one stays; `router rollback` puts the registry's router back. A tier listed in [routes] retrieval answers
chats with the user's documents unless the request says `"retrieval": false`."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import binary_path, http_json, setup_env, own_system

TIERS = {
    "sql": [
        "SELECT all customers who ordered twice in March", "write a SQL join of orders and invoices",
        "how do I add an index to a postgres table", "GROUP BY with HAVING count greater than 5",
        "left outer join versus inner join in MySQL", "delete duplicate rows from a SQL table",
        "create a table with a foreign key constraint", "window function ROW_NUMBER over partition",
        "sqlite query to find the maximum salary per department", "update rows where the date is null",
        "explain a query plan for a slow SELECT", "insert many rows into postgres in one statement",
        "SQL to count distinct users per day", "rename a column in an Oracle table",
        "subquery in the WHERE clause of a SELECT", "a CTE that walks a tree of categories",
    ],
    "german": [
        "Wie spät ist es bitte?", "Ich möchte ein Zimmer für zwei Nächte buchen.",
        "Kannst du mir den Weg zum Bahnhof erklären?", "Das Wetter ist heute sehr schön.",
        "Wo kann ich hier frisches Brot kaufen?", "Mein Auto springt morgens nicht an.",
        "Wir fahren im Sommer an die Ostsee.", "Bitte schick mir die Rechnung per Post.",
        "Meine Großmutter backt jeden Sonntag Kuchen.", "Der Zug hat wieder zwanzig Minuten Verspätung.",
        "Wie heißt die Hauptstadt von Österreich?", "Ich habe meinen Schlüssel verloren.",
        "Gibt es in der Nähe eine Apotheke?", "Die Kinder spielen im Garten Fußball.",
        "Morgen gehe ich zum Zahnarzt.", "Das Konzert war gestern ausverkauft.",
    ],
    "math": [
        "what is the derivative of x squared times sine x", "integrate 1 over x from 1 to e",
        "solve the quadratic equation 2x^2 - 3x + 1 = 0", "prove that the square root of 2 is irrational",
        "compute the determinant of a 3 by 3 matrix", "what is the limit of sin(x)/x as x goes to 0",
        "find the eigenvalues of a symmetric matrix", "how many ways to choose 3 items from 10",
        "sum of the geometric series 1/2 + 1/4 + 1/8", "probability of two sixes with two dice",
        "the taylor expansion of e to the x", "solve the system x + y = 5 and x - y = 1",
        "is 221 a prime number", "area under the curve y = x^3 between 0 and 2",
        "what is the gradient of f(x, y) = x*y", "the inverse of a 2 by 2 matrix",
    ],
    "poetry": [
        "write a haiku about autumn leaves", "a sonnet about the sea at night",
        "compose a short poem about lost love", "a limerick about a cat who loves cheese",
        "write verses about the moon over the mountains", "a rhyming poem for my grandmother's birthday",
        "free verse about a rainy city street", "an ode to morning coffee",
        "a ballad of a sailor who never came home", "write a poem about spring flowers blooming",
        "a short elegy for an old oak tree", "rhyming couplets about winter snow",
        "a love poem in the style of the romantics", "write a poem about stars and silence",
        "a playful poem about a dancing dog", "verses about the river flowing to the sea",
    ],
}


def sy(system, *args: str) -> subprocess.CompletedProcess:
    env = setup_env()
    env["SWITCHYARD_CONTROLLER"] = f"http://{system.grpc_addr}"
    env["SWITCHYARD_API_TOKEN"] = system.token
    return subprocess.run([str(binary_path()), *args], env=env, capture_output=True, text=True, timeout=300)


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "tier": t}) + "\n" for p, t in rows))
    return path


@pytest.fixture(scope="module")
def fitted(system, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("router")
    train = [(p, t) for t, ps in TIERS.items() for p in ps[:12]]
    held = [(p, t) for t, ps in TIERS.items() for p in ps[12:]]
    out = tmp / "router.json"
    r = sy(system, "router", "fit", str(write_jsonl(tmp / "train.jsonl", train)), "--out", str(out), "-o", "json")
    assert r.returncode == 0, r.stderr
    return tmp, json.loads(r.stdout), out, write_jsonl(tmp / "held.jsonl", held)


def test_four_made_up_tiers_route_held_out_prompts_far_above_chance(system, fitted):
    tmp, report, out, held = fitted
    assert report["tiers"] == {"sql": 12, "german": 12, "math": 12, "poetry": 12}
    assert report["held_out"] == 8 and report["trained_on"] == 48  # round(12 x 0.2) of each tier
    # Chance is 25 %.
    assert report["evaluation"]["accuracy"] >= 0.75, report["evaluation"]
    head = json.loads(out.read_text())
    assert head["tiers"] == ["sql", "german", "math", "poetry"] and head["dim"] == 384
    assert head["sha256"] == report["sha256"]
    r = sy(system, "router", "eval", str(held), "--router", str(out), "-o", "json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)["evaluation"]
    assert ev["accuracy"] >= 0.75, ev
    assert sum(map(sum, ev["confusion"])) == 16
    table = sy(system, "router", "eval", str(held), "--router", str(out))
    assert "accuracy" in table.stdout and "poetry" in table.stdout, table.stdout


def test_bad_files_are_clear_errors_with_line_numbers(system, fitted):
    tmp, _, out, held = fitted
    one = write_jsonl(tmp / "one.jsonl", [(p, "sql") for p in TIERS["sql"]])
    r = sy(system, "router", "fit", str(one), "--out", str(tmp / "x.json"))
    assert r.returncode != 0 and "a router needs at least 2 tiers; the file has 1 (sql)" in r.stderr, r.stderr
    assert not (tmp / "x.json").exists()
    bad = tmp / "bad.jsonl"
    bad.write_text('{"prompt": "fine", "tier": "sql"}\n{"prompt": "", "tier": "sql"}\n')
    r = sy(system, "router", "fit", str(bad))
    assert r.returncode != 0 and "line 2: empty prompt" in r.stderr, r.stderr
    bad.write_text('{"prompt": "fine", "tier": "sql"}\n{"prompt": "x", "tier": "sql",\n')
    r = sy(system, "router", "fit", str(bad))
    assert r.returncode != 0 and "line 2: not a" in r.stderr, r.stderr
    unknown = write_jsonl(tmp / "unknown.jsonl", [("hola", "spanish")])
    r = sy(system, "router", "eval", str(unknown), "--router", str(out))
    assert r.returncode != 0 and "line 1: unknown tier 'spanish' (this router has: sql, german, math, poetry)" in r.stderr, r.stderr
    edited = tmp / "edited.json"
    edited.write_text(out.read_text().replace('"trained_on": 48', '"trained_on": 49'))
    r = sy(system, "router", "eval", str(held), "--router", str(edited))
    assert r.returncode != 0 and "sha256 does not match" in r.stderr, r.stderr
    r = sy(system, "router", "fit", str(held), "--holdout", "0.95")
    assert r.returncode != 0 and "--holdout must be between 0 and 0.9" in r.stderr, r.stderr


ROUTES = """
[routes]
retrieval = ["sql"]

[routes.tiers]
sql = ["smollm2-135m-code"]
german = ["smollm2-135m"]
math = ["smollm2-135m-heavy"]
poetry = ["smollm2-135m"]
"""


@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """A second `switchyard up` whose routes serve the four made-up tiers."""
    with own_system(tmp_path_factory.mktemp("routed"), ROUTES) as system:
        yield system


def tier_of(system, prompt: str) -> str:
    status, body, _ = http_json(f"{system.http_url}/v1/pipeline", token=system.token,
                                body={"prompt": prompt, "max_tokens": 1})
    assert status == 200, body
    return body["tier"]


def test_install_hot_swaps_under_load_refuses_unrouted_tiers_and_rolls_back(routed, fitted):
    tmp, report, out, _ = fitted
    show = json.loads(sy(routed, "router", "show", "-o", "json").stdout)
    assert show["fitted"] is False and show["model"] == "router" and show["previous_sha256"] is None
    assert tier_of(routed, "write a SQL join of two tables") in ("fast", "code", "heavy")

    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            status, _, _ = http_json(f"{routed.http_url}/v1/pipeline", token=routed.token,
                                     body={"prompt": f"Wie spät ist es? ({i})", "max_tokens": 1})
            statuses.append(status)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        r = sy(routed, "router", "install", str(out), "-o", "json")
        assert r.returncode == 0, r.stderr
        installed = json.loads(r.stdout)
        assert installed["fitted"] and installed["tiers"] == ["sql", "german", "math", "poetry"]
        assert installed["sha256"] == report["sha256"] and installed["previous_sha256"] == ""
        assert tier_of(routed, "SELECT the customers who ordered twice in March") == "sql"
        assert tier_of(routed, "Wo ist bitte der Bahnhof?") == "german"
        chat = {"model": "auto", "max_tokens": 1,
                "messages": [{"role": "user", "content": "SELECT the customers who ordered twice in March"}]}
        status, body, _ = http_json(f"{routed.http_url}/v1/chat/completions", token=routed.token, body=chat)
        assert status == 200, body
        assert body["switchyard"]["sources"] == [] and "without context" in body["switchyard"]["retrieval"], body
        status, body, _ = http_json(f"{routed.http_url}/v1/chat/completions", token=routed.token,
                                    body={**chat, "retrieval": False})
        assert status == 200 and "sources" not in body["switchyard"], body
        chat["messages"][0]["content"] = "Wo ist bitte der Bahnhof?"
        status, body, _ = http_json(f"{routed.http_url}/v1/chat/completions", token=routed.token, body=chat)
        assert status == 200 and "sources" not in body["switchyard"], "german does not retrieve by default"
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    assert statuses and all(s == 200 for s in statuses), statuses

    spanish_prompts = ("hola amigo", "buenos días", "¿dónde está la playa?", "me gusta la paella",
                       "gracias por todo", "hasta mañana")
    spanish = write_jsonl(tmp / "spanish.jsonl", [(p, "sql") for p in TIERS["sql"][:6]]
                          + [(p, "spanish") for p in spanish_prompts])
    r = sy(routed, "router", "fit", str(spanish), "--out", str(tmp / "spanish.json"))
    assert r.returncode == 0, r.stderr
    r = sy(routed, "router", "install", str(tmp / "spanish.json"))
    assert r.returncode != 0 and "tier(s) spanish have no models in [routes]" in r.stderr, r.stderr
    show = json.loads(sy(routed, "router", "show", "-o", "json").stdout)
    assert show["sha256"] == report["sha256"], "a refused install leaves the installed router"

    r = sy(routed, "router", "rollback", "-o", "json")
    assert r.returncode == 0, r.stderr
    back = json.loads(r.stdout)
    assert back["fitted"] is False and back["previous_sha256"] == report["sha256"]
    assert tier_of(routed, "SELECT the customers who ordered twice in March") in ("fast", "code", "heavy")
