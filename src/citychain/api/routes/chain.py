"""Chain routes: status, genesis, health, blocks (cursor-paginated) and light-client headers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from citychain.api.gateway import Gateway, gateway_of
from citychain.api.node import BlockSummary
from citychain.api.problems import Problem
from citychain.api.routes.common import PROBLEMS, node_problems
from citychain.api.schemas import BlockAnswer, BlockPage, LightBlock, StatusAnswer

router = APIRouter(tags=["chain"], responses=PROBLEMS)

GatewayDep = Annotated[Gateway, Depends(gateway_of)]


@router.get("/v1/status", response_model=StatusAnswer, summary="Chain and node status")
async def get_status(gateway: GatewayDep) -> StatusAnswer:
    with node_problems():
        status = await gateway.node.status()
        mempool = await gateway.node.mempool_size()
    return StatusAnswer(chain_id=status.chain_id, driver=status.driver,
                        latest_height=status.latest_height,
                        latest_block_hash=status.latest_block_hash,
                        latest_app_hash=status.latest_app_hash,
                        latest_block_time=status.latest_block_time, mempool_size=mempool)


@router.get("/v1/genesis", summary="The node's genesis document",
            description="Convenience only: a verifying client obtains genesis out of band.",
            responses={200: {"content": {"application/json": {"example": {
                "chain_id": "citychain-demo", "validators": []}}}}})
async def get_genesis(gateway: GatewayDep) -> dict[str, Any]:
    with node_problems():
        return await gateway.node.genesis()


@router.get("/healthz", summary="200 when the node answers",
            responses={200: {"content": {"application/json": {"example": {
                "ok": True, "latest_height": 42}}}}})
async def get_health(gateway: GatewayDep) -> dict[str, Any]:
    with node_problems():
        status = await gateway.node.status()
    return {"ok": True, "latest_height": status.latest_height}


def _block_answer(block: BlockSummary) -> BlockAnswer:
    return BlockAnswer(height=block.height, hash=block.hash, time=block.time,
                       proposer=block.proposer, app_hash=block.app_hash,
                       num_txs=len(block.tx_hashes), tx_hashes=block.tx_hashes)


@router.get("/v1/blocks", response_model=BlockPage, summary="Committed blocks, newest first")
async def list_blocks(
    gateway: GatewayDep,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page",
                                        examples=["41"], max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="page size", examples=[20])] = 20,
) -> BlockPage:
    with node_problems():
        latest = (await gateway.node.status()).latest_height
    top = latest
    if cursor is not None:
        if not cursor.isdigit() or not 1 <= int(cursor) <= latest:
            raise Problem.api("invalid_request", f"cursor {cursor!r} is not a cursor this "
                              "gateway gave out", field="cursor")
        top = int(cursor)
    items = []
    with node_problems("block"):
        for height in range(top, max(top - limit, 0), -1):
            items.append(_block_answer(await gateway.node.block(height)))
    bottom = top - limit
    return BlockPage(items=items, next_cursor=str(bottom) if bottom >= 1 else None)


@router.get("/v1/blocks/{height}", response_model=BlockAnswer, summary="One committed block")
async def get_block(
    gateway: GatewayDep,
    height: Annotated[str, Path(description="a height, or 'latest'", examples=["42"],
                                pattern=r"^(latest|[1-9][0-9]{0,17})$")],
) -> BlockAnswer:
    with node_problems(f"block {height}"):
        if height != "latest":
            latest = (await gateway.node.status()).latest_height
            if int(height) > latest:
                raise Problem.api("not_found", f"block {height} is above the tip ({latest})",
                                  field="height")
        return _block_answer(await gateway.node.block(0 if height == "latest" else int(height)))


@router.get("/v1/light/{height}", response_model=LightBlock,
            summary="What a light client needs to verify header `height`")
async def get_light_block(
    gateway: GatewayDep,
    height: Annotated[int, Path(ge=1, le=2**62, description="a height", examples=[41])],
) -> LightBlock:
    with node_problems(f"header {height}"):
        latest = (await gateway.node.status()).latest_height
        if height > latest:
            raise Problem.api("not_found", f"header {height} is above the tip ({latest})",
                              field="height")
        return LightBlock(**await gateway.node.light_block(height))
