// The /docs page: Swagger UI from the copy vendored under /vendor/swagger-ui (no CDN), reading this
// API's own schema. A file, not an inline script: the API's CSP refuses inline scripts.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No call to the public validator (it is on the internet) and no "Try it out" writes by default.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
