"""HTTP and WebSocket routes. Routes only read the store and the sources' health; no collection."""
