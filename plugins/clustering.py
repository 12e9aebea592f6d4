"""Space builder ``clusters``: Louvain communities and an average-linkage tree of each space,
and their agreement with the tasks' labels. :func:`cluster_tasks` is the one clustering of a
space; the html report uses it too where results.json has no ``clusters`` analysis."""

from __future__ import annotations

from typing import Any

import numpy as np

from lingspace_harness import AnalysisContext, DataError, UserError, hookimpl
from lingspace_harness.agreement import cluster_agreement
from lingspace_harness.stats import symmetrise

LABEL_KINDS = ("phenomenon", "group", "field")
#: Negative similarities become weight 0 (no edge) in the graph Louvain runs on.
NEGATIVE_POLICY = "clip"


def graph_of(tasks: list[str], sim: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """A networkx graph with an edge of weight ``max(sim, 0)`` for each positive pair, and how
    many pairs were negative (clipped to 0) and the smallest value."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(tasks)
    rows, cols = np.triu_indices(len(tasks), 1)
    values = sim[rows, cols]
    for i, j, w in zip(rows, cols, values):
        if w > 0:
            graph.add_edge(tasks[i], tasks[j], weight=float(w))
    negative = values[values < 0]
    return graph, {
        "policy": NEGATIVE_POLICY,
        "count": int(negative.size),
        "min": float(negative.min()) if negative.size else None,
    }


def louvain(graph: Any, tasks: list[str], seed: int) -> tuple[dict[str, int], float | None]:
    """Seeded Louvain communities, numbered by their first task in ``tasks`` order, and their
    modularity (None for a graph without edges, where every task is its own community)."""
    import networkx as nx

    if graph.number_of_edges() == 0:
        return {t: i for i, t in enumerate(tasks)}, None
    found = nx.community.louvain_communities(graph, weight="weight", seed=seed)
    position = {t: i for i, t in enumerate(tasks)}
    found = sorted(found, key=lambda c: min(position[t] for t in c))
    communities = {t: k for k, members in enumerate(found) for t in members}
    return {t: communities[t] for t in tasks}, modularity(graph, tasks, [communities[t] for t in tasks])


def modularity(graph: Any, tasks: list[str], labels: list[int]) -> float:
    """Newman's weighted modularity of a partition (``labels[i]``: ``tasks[i]``'s community),
    sum over communities of L_c / m - (d_c / 2m)^2, summed in ``tasks`` order: networkx's
    ``modularity`` gives the same value but sums in string-hash order, which changes its last
    digit between processes."""
    import networkx as nx

    weights = nx.to_numpy_array(graph, nodelist=tasks, weight="weight")
    degree = weights.sum(axis=1)
    two_m = degree.sum()
    codes = np.array(labels)
    members = [np.flatnonzero(codes == c) for c in sorted(set(labels))]
    return float(sum(weights[np.ix_(i, i)].sum() / two_m - (degree[i].sum() / two_m) ** 2 for i in members))


def distances(sim: np.ndarray) -> tuple[np.ndarray, str]:
    """``1 - similarity`` for a self-similarity space (unit diagonal, nothing above 1: cosine,
    Jaccard, CKA), else ``max - similarity`` over the off-diagonal entries (e.g. transfer)."""
    off = sim[~np.eye(len(sim), dtype=bool)]
    if np.allclose(np.diag(sim), 1.0) and off.max() <= 1 + 1e-9:
        dist, how = 1.0 - sim, "1 - similarity"
    else:
        dist, how = off.max() - sim, "max - similarity"
    dist = np.clip(dist, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return dist, how


def drop_undefined(sim: np.ndarray) -> np.ndarray:
    """Which tasks to keep so that no similarity between kept tasks is undefined (NaN): drops,
    one at a time, the task with the most undefined similarities to the tasks still kept."""
    bad = np.isnan(sim)
    np.fill_diagonal(bad, False)
    keep = np.ones(len(sim), dtype=bool)
    while True:
        counts = (bad & keep[:, None] & keep[None, :]).sum(axis=1)
        if not counts.any():
            return keep
        keep[int(np.argmax(counts))] = False


def cluster_tasks(tasks: list[str], matrix: Any, seed: int = 0) -> dict[str, Any]:
    """Louvain communities and the average-linkage tree (optimal leaf order) of a space,
    symmetrised. Tasks with undefined similarities are left out (``left_out``, see
    :func:`drop_undefined`), never read as 0: ``tasks`` are the clustered ones (the linkage's
    leaves index them), ``order`` is their leaf order followed by the left-out tasks."""
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    try:
        sim = symmetrise(np.array(matrix, dtype=float))
    except (UserError, ValueError):
        sim = None
    if sim is None or sim.shape != (len(tasks), len(tasks)):
        raise DataError(f"results.json: a space over {len(tasks)} tasks needs a {len(tasks)}x{len(tasks)} matrix")
    keep = drop_undefined(sim)
    kept = [t for t, k in zip(tasks, keep) if k]
    left = [t for t, k in zip(tasks, keep) if not k]
    out: dict[str, Any] = {
        "tasks": kept,
        "order": kept + left,
        "linkage": [],
        "communities": {},
        "modularity": None,
        "negative_weights": None,
        "left_out": {
            "count": len(left),
            "tasks": left,
            "reason": "undefined similarities to other tasks" if left else None,
        },
    }
    if len(kept) < 3:
        return {**out, "reason": f"{len(kept)} tasks with defined similarities; clustering needs 3"}
    sim = sim[np.ix_(keep, keep)]
    graph, negative = graph_of(kept, sim)
    communities, modularity = louvain(graph, kept, seed)
    dist, how = distances(sim)
    condensed = squareform(dist, checks=False)
    tree = optimal_leaf_ordering(linkage(condensed, method="average"), condensed)
    return {
        **out,
        "order": [kept[i] for i in leaves_list(tree)] + left,
        "linkage": tree.tolist(),
        "distance": how,
        "communities": communities,
        "n_communities": len(set(communities.values())),
        "modularity": modularity,
        "negative_weights": negative,
    }


def agreement(clustered: dict[str, Any], results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
    """ARI/NMI of the clustered tasks' Louvain communities and of the tree cut into as many
    clusters as there are labels, against each label kind (tasks without the label left out)."""
    from scipy.cluster.hierarchy import fcluster

    tasks, communities, o = clustered["tasks"], clustered["communities"], ctx.options
    tree = np.array(clustered["linkage"], dtype=float)
    out = {}
    info = results.get("tasks", {})
    for kind in LABEL_KINDS:
        labels = [info.get(t, {}).get(kind) for t in tasks]
        keep = [i for i, v in enumerate(labels) if v is not None]
        truth = [labels[i] for i in keep]
        k = len(set(truth))
        if not 2 <= k < len(truth):  # one label, or every task its own: nothing to agree with
            continue
        cut = fcluster(tree, t=k, criterion="maxclust")
        out[kind] = {
            "louvain": cluster_agreement(
                truth, [communities[tasks[i]] for i in keep], permutations=o.permutations, seed=o.seed
            ),
            "hierarchical": {
                "clusters": k,
                **cluster_agreement(truth, [int(cut[i]) for i in keep], permutations=o.permutations, seed=o.seed),
            },
        }
    return out


def cluster_space(tasks: list[str], matrix: Any, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
    """:func:`cluster_tasks` and its ``agreement`` with the tasks' labels."""
    clustered = cluster_tasks(tasks, matrix, ctx.options.seed)
    if clustered.get("reason"):
        return {**clustered, "agreement": {}}
    return {**clustered, "agreement": agreement(clustered, results, ctx)}


class Clusters:
    name = "clusters"
    description = (
        "Louvain communities (negative similarities clipped to 0) and an average-linkage tree "
        "with optimal leaf order per space, with ARI/NMI against phenomenon, group and field; "
        "tasks with undefined similarities are left out (and counted)"
    )

    def build(self, results: dict[str, Any], ctx: AnalysisContext) -> dict[str, Any]:
        return {
            metric: cluster_space(space["tasks"], space["matrix"], results, ctx)
            for metric, space in results.get("spaces", {}).items()
        }


@hookimpl
def lingspace_register_space_builders(register):
    register(Clusters())
