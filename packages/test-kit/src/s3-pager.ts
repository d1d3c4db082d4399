import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { freePort } from './process';

/** An HTTP front for an S3 server that answers ListMultipartUploads in pages (see startS3Pager). */
export interface S3Pager {
  readonly port: number;
  /** http://127.0.0.1:<port>: the endpoint to give the client under test. */
  readonly endpoint: string;
  /** ListMultipartUploads requests answered so far (pages served). */
  readonly listings: number;
  close(): Promise<void>;
}

/**
 * Puts an HTTP front before an S3 server (path-style requests) that answers ListMultipartUploads
 * in pages, as AWS does: at most `maxUploads` a page (AWS: 1000, or less when the request's
 * max-uploads asks), sorted by key then upload id, IsTruncated with NextKeyMarker and
 * NextUploadIdMarker, and key-marker / upload-id-marker to go on. moto_server answers every
 * upload in one page whatever their number, and s3rver does not list them at all, so a client
 * that ignores IsTruncated passes against both and still misses uploads on AWS; a small
 * `maxUploads` shows that with a handful of uploads instead of a thousand. Every other request
 * goes through unchanged. The page is cut from the server's own listing (its prefix applied); the
 * delimiter and encoding-type parameters are not supported.
 */
export async function startS3Pager(targetPort: number, { maxUploads = 1000 }: { maxUploads?: number } = {}): Promise<S3Pager> {
  const port = await freePort();
  let listings = 0;
  const forward = (req: IncomingMessage, res: ServerResponse, path: string, answer: (upstream: IncomingMessage) => void) => {
    const upstream = request({ host: '127.0.0.1', port: targetPort, method: req.method, path, headers: req.headers }, answer);
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://s3');
    if (req.method !== 'GET' || !url.searchParams.has('uploads')) {
      forward(req, res, req.url ?? '/', (upstream) => {
        res.writeHead(upstream.statusCode ?? 502, upstream.headers);
        upstream.pipe(res);
      });
      return;
    }
    listings++;
    const prefix = url.searchParams.get('prefix');
    const everything = `${url.pathname}?uploads${prefix === null ? '' : `&prefix=${encodeURIComponent(prefix)}`}`;
    forward(req, res, everything, (upstream) => {
      const chunks: Buffer[] = [];
      upstream.on('data', (chunk: Buffer) => chunks.push(chunk));
      upstream.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (upstream.statusCode !== 200) {
          res.writeHead(upstream.statusCode ?? 502, upstream.headers).end(body);
          return;
        }
        res.writeHead(200, { 'content-type': 'application/xml' }).end(page(url, body, maxUploads));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    get listings() {
      return listings;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One page of a full ListMultipartUploads answer, as the request's markers and max-uploads ask. */
function page(url: URL, full: string, maxUploads: number): string {
  const keyMarker = url.searchParams.get('key-marker') ?? '';
  const uploadIdMarker = url.searchParams.get('upload-id-marker') ?? '';
  const asked = Number(url.searchParams.get('max-uploads') ?? 1000);
  const limit = Math.max(1, Math.min(maxUploads, asked));
  const uploads = [...full.matchAll(/<Upload>[\s\S]*?<\/Upload>/g)]
    .map(([xml]) => ({ xml, key: unescapeXml(/<Key>([\s\S]*?)<\/Key>/.exec(xml)?.[1] ?? ''), id: /<UploadId>([\s\S]*?)<\/UploadId>/.exec(xml)?.[1] ?? '' }))
    .sort((a, b) => compare(a.key, b.key) || compare(a.id, b.id))
    // S3's rule: after the key marker, or at it with a later upload id when an id marker is given
    .filter((u) => u.key > keyMarker || (uploadIdMarker !== '' && u.key === keyMarker && u.id > uploadIdMarker));
  const shown = uploads.slice(0, limit);
  const last = shown[shown.length - 1];
  const truncated = uploads.length > limit && last !== undefined;
  const bucket = url.pathname.replace(/^\/+/, '').split('/')[0] ?? '';
  const prefix = url.searchParams.get('prefix');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Bucket>${escapeXml(bucket)}</Bucket>${prefix === null ? '' : `<Prefix>${escapeXml(prefix)}</Prefix>`}` +
    `<KeyMarker>${escapeXml(keyMarker)}</KeyMarker><UploadIdMarker>${escapeXml(uploadIdMarker)}</UploadIdMarker>` +
    (truncated ? `<NextKeyMarker>${escapeXml(last.key)}</NextKeyMarker><NextUploadIdMarker>${escapeXml(last.id)}</NextUploadIdMarker>` : '') +
    `<MaxUploads>${limit}</MaxUploads><IsTruncated>${truncated}</IsTruncated>${shown.map((u) => u.xml).join('')}</ListMultipartUploadsResult>`
  );
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const XML_ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&apos;': "'" };

function unescapeXml(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|apos);/g, (entity) => XML_ENTITIES[entity] as string);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
