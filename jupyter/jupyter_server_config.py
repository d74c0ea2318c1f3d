"""Jupyter Server settings for `make lab` (the Makefile puts this folder on JUPYTER_CONFIG_PATH).

Chapters are jupytext text notebooks, which store no `language_info`. JupyterLab writes the kernel's
`language_info` into a notebook as soon as its kernel connects, so every chapter opened already marked modified
(closing it unedited asked to save). The contents manager below is jupytext's, giving a text notebook for this
Python's kernel the `language_info` that kernel reports, so nothing changes when it connects; jupytext leaves
`language_info` out of the file again on save.
"""
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class


class TextNotebookContentsManager(build_async_jupytext_contents_manager_class(AsyncLargeFileManager)):
    """Jupytext's contents manager; text notebooks for the python3 kernel open with that kernel's language_info."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and model.get("type") == "notebook" and not path.endswith(".ipynb"):
            metadata = model["content"]["metadata"]
            if metadata.get("kernelspec", {}).get("name") == "python3":
                from ipykernel.ipkernel import IPythonKernel  # the kernel `make lab` starts: this same Python

                metadata.setdefault("language_info", dict(IPythonKernel.language_info))
        return model


config = globals()["c"]  # the configuration being loaded (traitlets puts it in a config file's namespace as c)
config.ServerApp.contents_manager_class = TextNotebookContentsManager
