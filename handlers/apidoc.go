package handlers

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5emb"

	"github.com/bulkd/bulkd/pkg/apidoc"
)

// apidocRoutes serves the API's description, as written (/openapi.yaml) and
// in JSON (/openapi.json), and a browsable reference at /docs: Swagger UI,
// whose files are embedded in the binary, so the page fetches nothing from
// elsewhere. None of them needs an API key: the description holds no data.
func apidocRoutes(get func(string, echo.HandlerFunc, ...echo.MiddlewareFunc)) {
	doc, err := apidoc.JSON()
	if err != nil {
		// The document is embedded: a test converts it, so this is a build
		// that never passed its tests.
		panic(fmt.Sprintf("handlers: the embedded API description: %v", err))
	}
	get("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", apidoc.YAML())
	})
	get("/openapi.json", func(c echo.Context) error {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, doc)
	})
	ui := echo.WrapHandler(v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "bulkd API",
		SwaggerJSON: "/openapi.json",
		BasePath:    "/docs/",
		// The models stay listed under the operations; the page has no
		// "try it out" proxy, so it sends nothing but to this server.
		SettingsUI: map[string]string{"defaultModelsExpandDepth": "1"},
	}))
	get("/docs", ui)
	get("/docs/*", ui)
}
