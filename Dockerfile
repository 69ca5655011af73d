# The image of previewbot's webhook server (`previewbot serve`), as charts/previewbot runs it:
# a non-root user, nothing written outside /tmp (the chart mounts an emptyDir there and makes the
# root filesystem read-only).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY previewbot ./previewbot
RUN python -m venv /opt/previewbot \
 && /opt/previewbot/bin/pip install --no-cache-dir --disable-pip-version-check '.[server]'

FROM python:3.12-slim
COPY --from=build /opt/previewbot /opt/previewbot
RUN groupadd --gid 10001 previewbot && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin previewbot
ENV PATH=/opt/previewbot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["previewbot"]
CMD ["serve"]
