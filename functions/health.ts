import { app } from '@azure/functions';
import { healthResponse } from '../shared/diagnostics/health';

app.http('health', {
  methods: ['GET'],
  authLevel: 'anonymous',
  route: 'health',
  handler: () => healthResponse(),
});
