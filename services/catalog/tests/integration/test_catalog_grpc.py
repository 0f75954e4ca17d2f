"""The catalog through its real gRPC server: import, listing, search, lookup, versions and activation."""

from __future__ import annotations

import uuid

import grpc
import orjson
import pytest
from sqlalchemy import text

from yummi.catalog.v1 import catalog_pb2 as pb
from yummi.catalog.v1.catalog_pb2_grpc import CatalogServiceStub
from yummi.events.v1 import events_pb2
from yummi_common.grpc_client import problem_errors
from yummi_common.messaging.events import decode_body
from yummi_common.service import Runtime

from .catalog_factories import catalog_bytes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def expect_error(call: object, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == code, caught.value.details()
    return caught.value


async def import_new(stub: CatalogServiceStub, count: int = 40) -> pb.ImportCatalogResponse:
    response: pb.ImportCatalogResponse = await stub.ImportCatalog(
        pb.ImportCatalogRequest(content=catalog_bytes(count), created_by="admin-1")
    )
    return response


async def list_all(stub: CatalogServiceStub, request: pb.ListProductsRequest) -> list[pb.Product]:
    seen: list[pb.Product] = []
    cursor = ""
    for _ in range(100):
        request.cursor = cursor
        page = await stub.ListProducts(request)
        assert len(page.items) <= request.limit
        seen.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            return seen
    raise AssertionError("pagination did not end")


async def activation_events(runtime: Runtime) -> list[events_pb2.DatasetActivated]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT payload FROM catalog.outbox "
                "WHERE event_type = 'catalog.dataset.activated' ORDER BY created_at"
            )
        )
        events = []
        for row in rows:
            event = decode_body("catalog.dataset.activated", row.payload)
            assert isinstance(event, events_pb2.DatasetActivated)
            events.append(event)
        return events


async def test_with_nothing_imported_the_catalog_is_empty_not_an_error(stub: CatalogServiceStub) -> None:
    source = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    assert (source.source, source.dataset_version, source.item_count) == ("postgres", "", 0)
    page = await stub.ListProducts(pb.ListProductsRequest(limit=10))
    assert list(page.items) == [] and page.dataset_version == "" and page.next_cursor == ""
    await expect_error(stub.GetProduct(pb.GetProductRequest(id="1001")), grpc.StatusCode.NOT_FOUND)
    batch = await stub.BatchGetProducts(pb.BatchGetProductsRequest(ids=["1001"]))
    assert list(batch.missing) == ["1001"]


async def test_import_makes_a_live_version_with_every_field_and_an_event(
    stub: CatalogServiceStub, runtime: Runtime
) -> None:
    imported = await import_new(stub)
    assert imported.active and not imported.already_imported
    assert imported.item_count == 40 and len(imported.checksum_sha256) == 64
    source = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    assert (source.dataset_version, source.item_count, source.dataset_id) == (
        imported.version,
        40,
        imported.dataset_id,
    )
    assert source.activated_at.seconds > 0 and source.checksum_sha256 == imported.checksum_sha256

    page = await stub.ListProducts(pb.ListProductsRequest(limit=3))
    assert page.dataset_version == imported.version and page.checksum_sha256 == imported.checksum_sha256
    first = page.items[0]
    assert (first.product_id, first.title, first.price_minor, first.currency) == (
        "1001",
        "Bananas Loose 1 kg",
        2499,
        "ZAR",
    )
    assert (first.retailer, first.category, first.available) == ("woolworths", "Fruit & Veg", True)
    assert (
        first.url.startswith("https://")
        and first.image_url.endswith(".jpg")
        and first.catalog_ref_id == "1001"
    )
    assert orjson.loads(first.attributes_json) == {
        "brand": "Woolworths",
        "nutrition": {"per": "100 g", "fat_g": {"total": 1.5}},
    }
    assert first.dataset_version == imported.version
    assert page.items[1].price_minor == 3250  # "32.50" as a string

    events = await activation_events(runtime)
    assert events[-1].dataset_id == imported.dataset_id and events[-1].version == imported.version
    assert events[-1].item_count == 40 and events[-1].checksum_sha256 == imported.checksum_sha256


async def test_cursor_pages_cover_every_product_exactly_once(stub: CatalogServiceStub) -> None:
    products = await list_all(stub, pb.ListProductsRequest(limit=7))
    assert len(products) == 40
    assert len({p.id for p in products}) == 40


async def test_filters_narrow_by_retailer_category_and_availability(stub: CatalogServiceStub) -> None:
    checkers = await stub.ListProducts(pb.ListProductsRequest(limit=50, retailer="Checkers"))
    assert [(p.retailer, p.product_id) for p in checkers.items] == [("checkers", "1001")]
    dairy = await stub.ListProducts(pb.ListProductsRequest(limit=50, category="dairy"))
    assert {p.product_id for p in dairy.items} == {"2001", "2002", "2003"}
    everything = await stub.ListProducts(pb.ListProductsRequest(limit=50))
    assert {p.product_id for p in everything.items if not p.available} == {"1004", "2003"}
    only_available = await stub.ListProducts(pb.ListProductsRequest(limit=50, available=True))
    assert len(only_available.items) == 38 and all(p.available for p in only_available.items)
    only_unavailable = await stub.ListProducts(pb.ListProductsRequest(limit=50, available=False))
    assert {p.product_id for p in only_unavailable.items} == {"1004", "2003"}


async def test_search_finds_bananas_despite_a_typo(stub: CatalogServiceStub) -> None:
    for q in ("banan", "Bananna", "BANANAS"):
        found = await stub.ListProducts(pb.ListProductsRequest(limit=10, q=q))
        titles = [p.title for p in found.items]
        assert "Bananas Loose 1 kg" in titles, (q, titles)
        assert all("anan" in t.lower() for t in titles), (q, titles)
    nothing = await stub.ListProducts(pb.ListProductsRequest(limit=10, q="zzqqxx"))
    assert list(nothing.items) == []
    wildcard = await stub.ListProducts(pb.ListProductsRequest(limit=10, q="%_"))
    assert list(wildcard.items) == []


async def test_search_pages_cover_every_match_once(stub: CatalogServiceStub) -> None:
    all_at_once = await stub.ListProducts(pb.ListProductsRequest(limit=100, q="banana"))
    paged = await list_all(stub, pb.ListProductsRequest(limit=1, q="banana"))
    assert [p.id for p in paged] == [p.id for p in all_at_once.items]
    assert len(paged) >= 4


async def test_random_gives_a_distinct_sample_of_the_requested_size(stub: CatalogServiceStub) -> None:
    samples = [await stub.ListProducts(pb.ListProductsRequest(limit=10, random=True)) for _ in range(5)]
    for sample in samples:
        assert len(sample.items) == 10 and len({p.id for p in sample.items}) == 10
        assert sample.next_cursor == ""
    assert len({tuple(p.id for p in s.items) for s in samples}) > 1
    everything = await stub.ListProducts(pb.ListProductsRequest(limit=500, random=True))
    assert len({p.id for p in everything.items}) == 40
    fruit = await stub.ListProducts(
        pb.ListProductsRequest(limit=3, random=True, category="Fruit & Veg", available=True)
    )
    assert len(fruit.items) == 3 and all(p.category == "Fruit & Veg" and p.available for p in fruit.items)
    await expect_error(
        stub.ListProducts(pb.ListProductsRequest(limit=5, random=True, cursor="abc")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_bad_listing_arguments_are_invalid_never_internal(stub: CatalogServiceStub) -> None:
    for request in (
        pb.ListProductsRequest(limit=501),
        pb.ListProductsRequest(limit=-1),
        pb.ListProductsRequest(limit=5, cursor="not-a-cursor!"),
        pb.ListProductsRequest(limit=5, cursor="W10"),  # base64 of []
        pb.ListProductsRequest(limit=5, q="x" * 101),
        pb.ListProductsRequest(limit=5, q="nul\x00"),
        pb.ListProductsRequest(limit=5, retailer="r" * 65),
        pb.ListProductsRequest(limit=5, category="bad\x00"),
    ):
        await expect_error(stub.ListProducts(request), grpc.StatusCode.INVALID_ARGUMENT)
    default = await stub.ListProducts(pb.ListProductsRequest())
    assert len(default.items) == 40  # limit 0 = the default page of 50
    for version in ("no-such-version", "x" * 500, "bad\x00"):
        await expect_error(
            stub.ListProducts(pb.ListProductsRequest(limit=5, dataset_version=version)),
            grpc.StatusCode.NOT_FOUND,
        )


async def test_get_product_by_uuid_or_retailer_product_id(stub: CatalogServiceStub) -> None:
    by_product_id = await stub.GetProduct(pb.GetProductRequest(id="2001"))
    assert by_product_id.title == "Full Cream Fresh Milk 2 l"
    by_uuid = await stub.GetProduct(pb.GetProductRequest(id=by_product_id.id.upper()))
    assert by_uuid == by_product_id
    for missing in (str(uuid.uuid4()), "999999", "x" * 10_000, "a/../b", "nul\x00"):
        await expect_error(stub.GetProduct(pb.GetProductRequest(id=missing)), grpc.StatusCode.NOT_FOUND)
    await expect_error(stub.GetProduct(pb.GetProductRequest(id="  ")), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(
        stub.GetProduct(pb.GetProductRequest(id="2001", dataset_version="nope")), grpc.StatusCode.NOT_FOUND
    )


async def test_batch_get_returns_found_products_and_the_missing_ids(stub: CatalogServiceStub) -> None:
    milk = await stub.GetProduct(pb.GetProductRequest(id="2001"))
    ghost = str(uuid.uuid4())
    batch = await stub.BatchGetProducts(
        pb.BatchGetProductsRequest(ids=[milk.id, "2001", "3001", "nope", ghost, "", "nope"])
    )
    assert sorted(p.product_id for p in batch.products) == ["2001", "3001"]
    assert list(batch.missing) == ["nope", ghost, ""]
    assert batch.dataset_version == milk.dataset_version
    at_checkers = await stub.BatchGetProducts(
        pb.BatchGetProductsRequest(ids=["1001", "2001"], retailer="checkers")
    )
    assert [(p.retailer, p.title) for p in at_checkers.products] == [("checkers", "Bananas Per kg")]
    assert list(at_checkers.missing) == ["2001"]
    await expect_error(
        stub.BatchGetProducts(pb.BatchGetProductsRequest(ids=[str(n) for n in range(501)])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_importing_the_same_bytes_again_changes_nothing(
    stub: CatalogServiceStub, runtime: Runtime
) -> None:
    content = catalog_bytes(nonce="same-bytes")
    first = await stub.ImportCatalog(pb.ImportCatalogRequest(content=content))
    events_before = len(await activation_events(runtime))
    again = await stub.ImportCatalog(pb.ImportCatalogRequest(content=content))
    assert again.already_imported and again.active
    assert (again.dataset_id, again.version, again.checksum_sha256) == (
        first.dataset_id,
        first.version,
        first.checksum_sha256,
    )
    assert len(await activation_events(runtime)) == events_before
    listed = await stub.ListDatasets(pb.ListDatasetsRequest(limit=500))
    assert sum(1 for d in listed.items if d.checksum_sha256 == first.checksum_sha256) == 1


async def test_a_bad_import_lists_its_errors_and_leaves_the_live_version_alone(
    stub: CatalogServiceStub,
) -> None:
    live = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    items = orjson.loads(catalog_bytes())["items"]
    items[3]["price"] = -5
    items[7]["title"] = ""
    items[9]["product_id"] = items[0]["product_id"]
    failed = await expect_error(
        stub.ImportCatalog(pb.ImportCatalogRequest(content=orjson.dumps(items))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "3 of 40 catalog items are invalid" in (failed.details() or "")
    errors = problem_errors(failed)
    assert [(e["index"], e["product_id"]) for e in errors] == [(3, "1004"), (7, "3001"), (9, "1001")]
    assert "index 0" in errors[2]["reason"]
    for content in (b"", b"{not json", b'{"items": []}', b"42"):
        await expect_error(
            stub.ImportCatalog(pb.ImportCatalogRequest(content=content)), grpc.StatusCode.INVALID_ARGUMENT
        )
    assert await stub.GetCatalogSource(pb.GetCatalogSourceRequest()) == live

    skipped = await stub.ImportCatalog(
        pb.ImportCatalogRequest(content=orjson.dumps(items), skip_invalid=True)
    )
    assert skipped.item_count == 37 and skipped.active
    assert [(e.index, e.product_id) for e in skipped.skipped] == [(3, "1004"), (7, "3001"), (9, "1001")]


async def test_a_new_version_goes_live_and_activating_the_old_one_rolls_back(
    stub: CatalogServiceStub, runtime: Runtime
) -> None:
    old = await import_new(stub)
    new = await import_new(stub, count=25)
    assert new.version > old.version and new.active
    assert (await stub.GetCatalogSource(pb.GetCatalogSourceRequest())).dataset_version == new.version
    old_page = await stub.ListProducts(pb.ListProductsRequest(limit=500, dataset_version=old.version))
    assert len(old_page.items) == 40 and {p.dataset_version for p in old_page.items} == {old.version}

    rolled_back = await stub.ActivateDataset(pb.DatasetRef(id=old.dataset_id))
    assert rolled_back.status == "active" and rolled_back.version == old.version
    source = await stub.GetCatalogSource(pb.GetCatalogSourceRequest())
    assert (source.dataset_version, source.item_count) == (old.version, 40)
    previous = await stub.GetDataset(pb.DatasetRef(id=new.dataset_id))
    assert previous.status == "retired" and previous.activated_at.seconds > 0
    statuses = [d.status for d in (await stub.ListDatasets(pb.ListDatasetsRequest(limit=500))).items]
    assert statuses.count("active") == 1

    events = await activation_events(runtime)
    assert (events[-1].dataset_id, events[-1].previous_dataset_id) == (old.dataset_id, new.dataset_id)
    again = await stub.ActivateDataset(pb.DatasetRef(id=old.dataset_id))
    assert again.status == "active"
    assert len(await activation_events(runtime)) == len(events)  # already live: no second event


async def test_a_product_keeps_its_id_when_a_new_version_goes_live(stub: CatalogServiceStub) -> None:
    await import_new(stub)
    milk = await stub.GetProduct(pb.GetProductRequest(id="2001"))
    newer = await import_new(stub, count=30)
    same = await stub.GetProduct(pb.GetProductRequest(id=milk.id))
    assert same.id == milk.id and same.dataset_version == newer.version != milk.dataset_version
    batch = await stub.BatchGetProducts(pb.BatchGetProductsRequest(ids=[milk.id]))
    assert [p.id for p in batch.products] == [milk.id] and batch.dataset_version == newer.version


async def test_a_cursor_keeps_paging_the_version_it_was_made_on(stub: CatalogServiceStub) -> None:
    before = await import_new(stub)
    first_page = await stub.ListProducts(pb.ListProductsRequest(limit=30))
    after = await import_new(stub, count=20)
    rest = await stub.ListProducts(pb.ListProductsRequest(limit=30, cursor=first_page.next_cursor))
    assert rest.dataset_version == before.version and len(rest.items) == 10
    await expect_error(
        stub.ListProducts(
            pb.ListProductsRequest(limit=30, cursor=first_page.next_cursor, dataset_version=after.version)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_datasets_can_be_listed_page_by_page_and_fetched(stub: CatalogServiceStub) -> None:
    everything = (await stub.ListDatasets(pb.ListDatasetsRequest(limit=500))).items
    paged: list[pb.Dataset] = []
    cursor = ""
    while True:
        page = await stub.ListDatasets(pb.ListDatasetsRequest(limit=2, cursor=cursor))
        paged.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    assert [d.id for d in paged] == [d.id for d in everything]
    newest = everything[0]
    fetched = await stub.GetDataset(pb.DatasetRef(id=newest.id))
    assert fetched == newest and fetched.progress.done == fetched.progress.total == fetched.item_count
    assert fetched.created_by == "admin-1" and fetched.source == "upload"
    for bad in (str(uuid.uuid4()), "not-a-uuid", ""):
        await expect_error(stub.GetDataset(pb.DatasetRef(id=bad)), grpc.StatusCode.NOT_FOUND)
        await expect_error(stub.ActivateDataset(pb.DatasetRef(id=bad)), grpc.StatusCode.NOT_FOUND)
    await expect_error(stub.ListDatasets(pb.ListDatasetsRequest(limit=501)), grpc.StatusCode.INVALID_ARGUMENT)
    await expect_error(
        stub.ListDatasets(pb.ListDatasetsRequest(cursor="zzz")), grpc.StatusCode.INVALID_ARGUMENT
    )


async def test_a_cached_page_is_never_served_once_another_version_is_live(stub: CatalogServiceStub) -> None:
    await import_new(stub)
    request = pb.ListProductsRequest(limit=10, q="pantry staple no. 3")
    first, again = await stub.ListProducts(request), await stub.ListProducts(request)
    assert first == again and first.items
    newer = await import_new(stub, count=15)
    after = await stub.ListProducts(request)
    assert after.dataset_version == newer.version != first.dataset_version
    assert {p.dataset_version for p in after.items} == {newer.version}
