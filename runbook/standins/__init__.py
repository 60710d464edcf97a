"""Stand-ins for outside systems, on loopback: used by the tests and by the sandbox.

``github``: the GitHub REST endpoints the library uses, over a real bare repository.
``ecs``: a rollout simulation layer over an in-process moto server.
"""
