"""`knowledge_search`: the tenant's documents through the retrieval function, as numbered, cited passages."""

from __future__ import annotations

from typing import Any

from agentplatform.retrieval import RetrievalRequest, SearchResult
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec

MAX_PASSAGE_CHARS = 1_500  # a passage as the model and the state carry it


def run(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    retrieval = ctx.resources.get("retrieval_function")
    if retrieval is None:
        raise ToolFailed("knowledge_search is not available in this deployment")
    # Tenant and groups come from the turn (the caller's credentials), never from the arguments.
    request = RetrievalRequest(
        query=arguments["query"],
        top_k=int(arguments.get("top_k", 5)),
        tenant=ctx.tenant,
        acl_groups=list(ctx.groups),
        context_tokens=0,
    )
    result = SearchResult.model_validate(retrieval.invoke(request.model_dump(mode="json")))
    return {
        "query": result.query,
        "passages": [
            {"text": hit.text[:MAX_PASSAGE_CHARS], "score": round(hit.score, 4), "citation": hit.citation.model_dump()}
            for hit in result.hits
        ],
    }


SPEC = ToolSpec(
    name="knowledge_search",
    description="Search the user's organization's documents. Returns passages with their source (document, path, "
    "section or page). Use it for any question about the organization's knowledge.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "What to look for."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "How many passages (5)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "passages": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "score": {"type": "number"},
                        "citation": {"type": "object", "required": ["doc_id", "path"]},
                    },
                    "required": ["text", "citation"],
                },
            },
        },
        "required": ["passages"],
    },
    run=run,
    timeout_s=25.0,
    needs=("retrieval_function",),
)
