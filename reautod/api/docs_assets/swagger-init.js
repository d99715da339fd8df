// reautod: starts Swagger UI on the daemon's own OpenAPI document (a file, not an inline
// script, so the page's Content-Security-Policy can forbid inline scripts). No validator:
// Swagger UI would send the document to an outside validator service.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
