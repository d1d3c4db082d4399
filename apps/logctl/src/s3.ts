import { S3Client } from '@aws-sdk/client-s3';
import type { Settings } from './settings';

/** An S3 client as the server makes one: endpoint, path style, region, the SDK's credential chain. */
export function s3Client(s3: NonNullable<Settings['s3']>): S3Client {
  return new S3Client({ region: s3.region, endpoint: s3.endpoint, forcePathStyle: s3.forcePathStyle, credentials: s3.credentials, maxAttempts: 2 });
}
