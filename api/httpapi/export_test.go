package httpapi

// RouteRoles exposes the route classification to the external tests.
var RouteRoles = routeRoles
