"""HTTP servers on 127.0.0.1 that speak real model APIs, and the demos they answer for."""
