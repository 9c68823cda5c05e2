"""Pure domain types shared by every layer; imports nothing of routeplane's own."""
