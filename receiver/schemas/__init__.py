"""The shapes at the boundaries, as pydantic models: callback records, the read API's
query parameters and answers. They validate input, shape output and make the OpenAPI
document."""
