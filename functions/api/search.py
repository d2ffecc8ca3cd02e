"""`POST /v1/search`: the caller's tenant and groups from the authorizer, the search from the retrieval
function (its own service, reached by Lambda Invoke)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from agentplatform.bootstrap import container
from agentplatform.principal import caller
from agentplatform.retrieval import RetrievalRequest, SearchBody, SearchResult
from agentplatform.search import SearchMode

SEARCH_SCOPE = "search"

router = APIGatewayHttpRouter()


@router.post(
    "/v1/search",
    summary="Search the tenant's documents",
    description=(
        "Hybrid search (BM25 + vector, fused as OpenSearch's normalization processor does) over the caller's "
        "tenant, with filters applied before ranking. Answers the hits with their citations and a context "
        f"assembled under a token budget, most relevant first. Needs the `{SEARCH_SCOPE}` scope."
    ),
    tags=["search"],
    responses={
        200: {"description": "Hits and the assembled context"},
        401: {"description": "No valid credentials"},
        403: {"description": f"The credentials lack the `{SEARCH_SCOPE}` scope"},
        429: {"description": "Over the tenant's request rate, or its model-token quota is spent (see Retry-After)"},
    },
)
def search(body: SearchBody) -> SearchResult:
    principal = caller(router.current_event.raw_event, SEARCH_SCOPE)
    c = container()
    if body.mode != SearchMode.BM25:  # the query embedding spends model tokens
        c.token_meter.check(principal.tenant)
    request = RetrievalRequest(**body.model_dump(), tenant=principal.tenant, acl_groups=list(principal.groups))
    answer = c.retrieval_function.invoke(request.model_dump(mode="json"))
    return SearchResult.model_validate(answer)
