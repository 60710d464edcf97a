"""The sandbox: a whole production world on loopback (AWS, GitHub, the app, its repository,
the deploy pipeline), so `--env sandbox` needs no AWS account and no GitHub.
"""
