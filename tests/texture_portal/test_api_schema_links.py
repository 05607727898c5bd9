"""The schema's OpenAPI links (texture_portal.api.schema.add_operation_links): from each list's first row and each
create's answer to the operations on that object, derived from the paths."""

from tests.texture_portal.test_api_schema_fuzz import generated_schema


def links_of(schema: dict, path: str, method: str, code: str) -> dict:
    return schema["paths"][path][method]["responses"][code].get("links", {})


def test_a_list_links_its_first_row_to_every_operation_on_it():
    schema = generated_schema()
    links = links_of(schema, "/v1/devices", "get", "200")
    assert set(links) == {
        "devices_retrieve",
        "devices_partial_update",
        "devices_destroy",
        "devices_commands_list",
        "devices_telemetry_list",
        "devices_tags_retrieve",
        "devices_tags_update",
    }
    assert links["devices_telemetry_list"]["parameters"] == {"id": "$response.body#/data/0/id"}
    # programs are named by their slug
    assert links_of(schema, "/v1/programs", "get", "200")["programs_retrieve"]["parameters"] == {
        "slug": "$response.body#/data/0/slug"
    }


def test_a_create_links_the_created_object():
    schema = generated_schema()
    links = links_of(schema, "/v1/destinations", "post", "201")
    assert {"destinations_retrieve", "destinations_partial_update", "destinations_destroy"} <= set(links)
    assert all(link["parameters"] == {"id": "$response.body#/id"} for link in links.values())
    assert "imports_confirm_create" in links_of(schema, "/v1/imports", "post", "202")


def test_no_link_guesses_a_parameter_the_answer_does_not_give():
    schema = generated_schema()
    commands = links_of(schema, "/v1/commands", "get", "200")
    assert set(commands) == {"commands_retrieve"}  # not /v1/commands/{deviceType}/{action}
    every_target = {
        link["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    }
    operation_ids = {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}
    assert every_target <= operation_ids and len(every_target) >= 30
