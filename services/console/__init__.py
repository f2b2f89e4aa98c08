"""The operators' web console at /console: server-rendered pages (Jinja2, htmx) that call the public
REST API in-process with the signed-in user's token, so every rule of the API applies to them."""
